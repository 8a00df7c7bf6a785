/* Browser stand-in for LuCI's runtime, used only to render the views for screenshots:
 * real DOM elements, rpc replies from FIXTURES, and a plain rendering of form maps. */
(function() {
	'use strict';
	const F = window.FIXTURES;
	String.prototype.format = function(...args) {
		let i = 0;
		return String(this).replace(/%(\.\d+)?([sdft%])/g, function(m, prec, c) {
			if (c === '%') return '%';
			const a = args[i++];
			if (c === 'd') return String(Math.trunc(+a));
			if (c === 'f') return (+a).toFixed(prec ? +prec.slice(1) : 6);
			if (c === 't') { const s = +a; return '%dh %dm %ds'.format(Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60); }
			return String(a);
		});
	};
	window._ = function(s) { return s; };
	window.E = function(tag, attrs, children) {
		if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof Node) { children = attrs; attrs = {}; }
		const el = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (typeof v === 'function') el.addEventListener(k, v);
			else if (v != null) el.setAttribute(k, v);
		}
		(function add(c) {
			if (c == null) return;
			if (Array.isArray(c)) return c.forEach(add);
			el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
		})(children);
		return el;
	};
	const rpc = { declare(d) { return function() { return Promise.resolve(F.rpc[d.method]); }; } };
	const ui = {
		addNotification() {}, addTimeLimitedNotification() {}, hideModal() {},
		showModal() {}, createHandlerFn(ctx, fn) { return function(ev) { return fn.call(ctx, ev); }; }
	};
	function widget(o) {
		const def = o.default != null ? String(o.default) : '';
		const val = function(sid) { const v = ((F.uci[sid] || {})[o.name]); return v != null ? v : def; };
		return function(sid) {
			if (o.kind === 'Flag') return E('input', Object.assign({ type: 'checkbox' }, val(sid) === '1' ? { checked: '' } : {}));
			if (o.kind === 'ListValue') return E('select', {}, o.choices.map(function(c) { return E('option', c === val(sid) ? { selected: '' } : {}, c); }));
			if (o.kind === 'DynamicList') {
				const vals = [].concat(val(sid) || []);
				return E('div', { 'class': 'dynlist' }, vals.map(function(v) { return E('div', { 'class': 'item' }, v); }).concat([E('input', { 'class': 'cbi-input-text', placeholder: '…' })]));
			}
			return E('input', { 'class': 'cbi-input-text', value: val(sid), placeholder: o.placeholder || '', readonly: o.readonly ? '' : null });
		};
	}
	class Section {
		constructor(map, kind, type, name) { Object.assign(this, { map: map, kind: kind, type: type, name: name, options: [], tabs: [] }); }
		tab(n, title) { this.tabs.push({ n: n, title: title }); }
		option(kind, name, title, description) { const o = { kind: kind, name: name, title: title, description: description, choices: [], value(v) { this.choices.push(v); }, depends(f, v) { (this.deps = this.deps || []).push([f, v]); } }; this.options.push(o); return o; }
		taboption(tab, kind, name, title, description) { const o = this.option(kind, name, title, description); o.tab = tab; return o; }
		renderSectionAdd() { return E('div'); }
		render() {
			const self = this;
			if (this.kind === 'GridSection') {
				const cols = this.options.filter(function(o) { return !o.modalonly; });
				const rows = Object.keys(F.uci).filter(function(sid) { return F.uci[sid]['.type'] === self.type; });
				return E('div', { 'class': 'cbi-section' }, [
					E('table', { 'class': 'table' }, [E('tr', { 'class': 'tr table-titles' }, cols.map(function(o) { return E('th', { 'class': 'th' }, o.title); }).concat([E('th', { 'class': 'th' }, '')]))]
						.concat(rows.map(function(sid) {
							return E('tr', { 'class': 'tr' }, cols.map(function(o) { return E('td', { 'class': 'td' }, widget(o)(sid)); })
								.concat([E('td', { 'class': 'td' }, [E('button', { 'class': 'cbi-button' }, 'Edit'), ' ', E('button', { 'class': 'cbi-button cbi-button-negative' }, 'Delete')])]));
						}))),
					E('button', { 'class': 'cbi-button cbi-button-add' }, 'Invite peer')
				]);
			}
			const sid = this.type; // NamedSection: section(form.NamedSection, 'main', 'awl')
			const byTab = this.tabs.length ? this.tabs : [{ n: undefined, title: '' }];
			return E('div', { 'class': 'cbi-section' }, byTab.map(function(t) {
				return E('fieldset', { 'class': 'cbi-tab' }, [t.title ? E('legend', {}, t.title) : null].concat(
					self.options.filter(function(o) { return o.tab === t.n; }).map(function(o) {
						return E('div', { 'class': 'cbi-value' }, [
							E('label', { 'class': 'cbi-value-title' }, o.title),
							E('div', { 'class': 'cbi-value-field' }, [widget(o)(sid), o.description ? E('div', { 'class': 'cbi-value-description' }, o.description) : null])
						]);
					})));
			}));
		}
	}
	const form = { Value: 'Value', Flag: 'Flag', ListValue: 'ListValue', DynamicList: 'DynamicList' };
	form.GridSection = class extends Section {};
	form.NamedSection = class extends Section {};
	form.Map = class {
		constructor(config, title, description) { Object.assign(this, { config: config, title: title, description: description, sections: [] }); this.data = { get() {} }; }
		section(cls, type, name) { const s = new cls(this, cls === form.GridSection ? 'GridSection' : 'NamedSection', type, name); this.sections.push(s); return s; }
		render() {
			return Promise.resolve(E('div', { 'class': 'cbi-map' }, [E('h2', {}, this.title), E('div', { 'class': 'cbi-map-descr' }, this.description || '')]
				.concat(this.sections.map(function(s) { return s.render(); }))));
		}
		load() { return Promise.resolve(); }
		reset() { return Promise.resolve(); }
	};
	const extend = function(p) { return p; };
	const modules = { view: { extend: extend }, baseclass: { extend: extend }, rpc: rpc, ui: ui, poll: { add() {} }, form: form };
	window.loadModule = function(name) {
		if (modules[name]) return modules[name];
		const src = F.sources[name];
		const names = [], values = [];
		src.replace(/^'require ([\w.]+)';$/gm, function(m, mod) { names.push(mod.split('.').pop()); values.push(window.loadModule(mod)); });
		modules[name] = new Function(...names, src)(...values);
		return modules[name];
	};
	window.renderView = function(name) {
		const v = window.loadModule(name);
		return Promise.resolve(v.load ? v.load() : null).then(function(d) { return v.render(d); }).then(function(node) {
			document.getElementById('maincontent').appendChild(node);
			document.title = 'rendered';
		});
	};
})();
