'use strict';
'require view';
'require poll';
'require awl';

/*
 * Log: the daemon's recent log lines ('awl logs', its in-memory ring), newest last, with a
 * level filter (applied here: the daemon returns its whole ring). Lines look like "<unix time> LEVEL target: message"; they can quote what peers
 * sent, so they are shown as text only.
 */

const LEVELS = [ 'error', 'warn', 'info', 'debug', 'trace' ];
const LINES = 500;

function levelOf(line) {
	const m = /^\d+\s+(ERROR|WARN|INFO|DEBUG|TRACE)\b/.exec(line);
	return m ? LEVELS.indexOf(m[1].toLowerCase()) : 2;
}

function stamp(line) {
	const m = /^(\d+)\s+/.exec(line);
	if (!m) return line;
	return new Date(+m[1] * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '') + ' ' + line.substr(m[0].length);
}

return view.extend({
	level: 'info',

	load() {
		return awl.call('logs', LINES).catch(function(e) { return { error: e.message }; });
	},

	renderLines(lines) {
		if (lines && lines.error)
			return E('div', { 'class': 'alert-message warning', 'id': 'awl-log' }, [ _('The awl daemon is not answering: %s').format(lines.error) ]);
		const max = LEVELS.indexOf(this.level);
		const shown = (lines || []).filter(function(l) { return levelOf(l) <= max; });
		if (!shown.length)
			return E('div', { 'id': 'awl-log' }, [ E('em', {}, [ _('No log lines at this level.') ]) ]);
		return E('pre', { 'id': 'awl-log', 'class': 'command-output', 'style': 'white-space:pre-wrap;max-height:40em;overflow-y:auto' },
			[ shown.map(stamp).join('\n') ]);
	},

	refresh() {
		const self = this;
		return this.load().then(function(lines) {
			self.lines = lines;
			const old = document.getElementById('awl-log');
			if (old && old.parentNode) old.parentNode.replaceChild(self.renderLines(lines), old);
		});
	},

	render(lines) {
		const self = this;
		this.lines = lines;
		poll.add(function() { return self.refresh(); }, 10);
		const select = E('select', {
			'class': 'cbi-input-select', 'id': 'awl-log-level',
			'change': function(ev) {
				self.level = ev.target.value;
				const old = document.getElementById('awl-log');
				if (old && old.parentNode) old.parentNode.replaceChild(self.renderLines(self.lines), old);
			}
		}, LEVELS.map(function(l) { return E('option', { 'value': l, 'selected': l === self.level ? '' : null }, [ l ]); }));
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Awl log') ]),
			E('div', { 'class': 'cbi-map-descr' }, [ _('The daemon keeps its last 500 log lines in memory. Lines above the chosen level are hidden.') ]),
			E('div', { 'class': 'cbi-section' }, [
				E('label', { 'for': 'awl-log-level' }, [ _('Show up to level') + ' ' ]), select
			]),
			this.renderLines(lines)
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
