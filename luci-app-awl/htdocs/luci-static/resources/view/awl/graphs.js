'use strict';
'require view';
'require poll';
'require awl';

/*
 * Realtime graphs, one per peer: receive and transmit rate and round-trip time over the last
 * five minutes, drawn as SVG like LuCI's realtime pages. The daemon's peers reply carries
 * cumulative byte counters (traffic.rx_bytes / tx_bytes) and the last RTT (rtt_ms); rates are
 * the differences between two polls. History lives in this page only (nothing on the router).
 */

const SVG = 'http://www.w3.org/2000/svg';
const INTERVAL = 3;            /* seconds between polls */
const SAMPLES = 100;           /* 100 × 3 s = 5 minutes */
const W = 600, H = 160;

function svg(tag, attrs, children) {
	const el = document.createElementNS(SVG, tag);
	for (const k in attrs)
		el.setAttribute(k, attrs[k]);
	(children || []).forEach(function(c) { el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
	return el;
}

function rate(bps) {
	const units = [ 'bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s' ];
	let i = 0;
	bps = bps * 8;
	while (bps >= 1000 && i < units.length - 1) { bps /= 1000; i++; }
	return '%.1f %s'.format(bps, units[i]);
}

function path(points, max, height) {
	if (!points.length) return '';
	const step = W / (SAMPLES - 1);
	const x0 = W - (points.length - 1) * step;
	return points.map(function(v, i) {
		const y = height - (max > 0 ? (v || 0) / max * (height - 10) : 0);
		return (i ? 'L' : 'M') + (x0 + i * step).toFixed(1) + ',' + y.toFixed(1);
	}).join(' ');
}

return view.extend({
	history: {},

	load() {
		return awl.call('peers').catch(function() { return []; });
	},

	/* Adds one poll's counters to each peer's history; rates from the previous sample. */
	sample(peers, now) {
		const self = this;
		peers.forEach(function(p) {
			const h = self.history[p.peer_id] = self.history[p.peer_id] || { alias: p.alias, last: null, rx: [], tx: [], rtt: [] };
			const t = p.traffic || {};
			h.alias = p.alias;
			if (h.last && now > h.last.time) {
				const dt = (now - h.last.time) / 1000;
				h.rx.push(Math.max(0, ((t.rx_bytes || 0) - h.last.rx) / dt));
				h.tx.push(Math.max(0, ((t.tx_bytes || 0) - h.last.tx) / dt));
				h.rtt.push(p.rtt_ms != null ? +p.rtt_ms : null);
				[ 'rx', 'tx', 'rtt' ].forEach(function(k) { while (h[k].length > SAMPLES) h[k].shift(); });
			}
			h.last = { time: now, rx: t.rx_bytes || 0, tx: t.tx_bytes || 0 };
		});
	},

	renderGraph(id) {
		const h = this.history[id];
		const maxRate = Math.max.apply(null, [ 1 ].concat(h.rx, h.tx));
		const maxRtt = Math.max.apply(null, [ 1 ].concat(h.rtt.filter(function(v) { return v != null; })));
		const last = function(a) { return a.length ? a[a.length - 1] : 0; };
		const grid = [ 0.25, 0.5, 0.75 ].map(function(f) {
			return svg('line', { 'x1': 0, 'x2': W, 'y1': (H * f).toFixed(0), 'y2': (H * f).toFixed(0), 'stroke': '#ddd', 'stroke-width': 1 });
		});
		return E('div', { 'class': 'cbi-section awl-graph', 'data-peer': id }, [
			E('h3', {}, [ h.alias || id ]),
			svg('svg', { 'width': '100%', 'height': H, 'viewBox': '0 0 ' + W + ' ' + H, 'preserveAspectRatio': 'none', 'style': 'border:1px solid #ccc;background:#fff' }, grid.concat([
				svg('path', { 'class': 'awl-rx', 'd': path(h.rx, maxRate, H), 'fill': 'none', 'stroke': '#0000ff', 'stroke-width': 1.5 }),
				svg('path', { 'class': 'awl-tx', 'd': path(h.tx, maxRate, H), 'fill': 'none', 'stroke': '#008000', 'stroke-width': 1.5 }),
				svg('path', { 'class': 'awl-rtt', 'd': path(h.rtt, maxRtt, H), 'fill': 'none', 'stroke': '#ff8c00', 'stroke-width': 1, 'stroke-dasharray': '4 2' }),
				svg('text', { 'x': 4, 'y': 12, 'font-size': 11, 'fill': '#666' }, [ rate(maxRate) ]),
				svg('text', { 'x': W - 4, 'y': 12, 'font-size': 11, 'fill': '#ff8c00', 'text-anchor': 'end' }, [ '%.0f ms'.format(maxRtt) ])
			])),
			E('table', { 'class': 'table' }, [
				E('tr', { 'class': 'tr' }, [
					E('td', { 'class': 'td', 'style': 'color:#0000ff' }, [ _('Receive') ]), E('td', { 'class': 'td' }, [ rate(last(h.rx)) ]),
					E('td', { 'class': 'td', 'style': 'color:#008000' }, [ _('Transmit') ]), E('td', { 'class': 'td' }, [ rate(last(h.tx)) ]),
					E('td', { 'class': 'td', 'style': 'color:#ff8c00' }, [ _('Round-trip time') ]),
					E('td', { 'class': 'td' }, [ last(h.rtt) != null ? '%.1f ms'.format(last(h.rtt)) : '-' ])
				])
			])
		]);
	},

	renderAll() {
		const self = this;
		const ids = Object.keys(this.history);
		return E('div', { 'id': 'awl-graphs' }, ids.length ? ids.map(function(id) { return self.renderGraph(id); })
			: [ E('em', {}, [ _('No peers yet.') ]) ]);
	},

	refresh() {
		const self = this;
		return this.load().then(function(peers) {
			self.sample(peers, Date.now());
			const old = document.getElementById('awl-graphs');
			if (old && old.parentNode) old.parentNode.replaceChild(self.renderAll(), old);
		});
	},

	render(peers) {
		const self = this;
		this.sample(peers, Date.now());
		poll.add(function() { return self.refresh(); }, INTERVAL);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Awl realtime traffic') ]),
			E('div', { 'class': 'cbi-map-descr' }, [ _('Receive and transmit rate and round-trip time per peer over the last five minutes, while this page is open.') ]),
			this.renderAll()
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
