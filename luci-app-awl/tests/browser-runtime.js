/* Browser stand-in for LuCI's runtime, used to render the views in Chromium for screenshots and
 * for the XSS check: real DOM elements, rpc replies from FIXTURES, a plain rendering of form
 * maps. Faithful where it matters, as tests/harness.js: E()/dom.append parse a bare string child
 * as HTML (innerHTML) and make array items text nodes; each module offers only the members in
 * FIXTURES.api (the intersection of the supported LuCI releases, tests/luci-api.json); grid
 * cells are escaped text, as LuCI's textvalue ('%h'). */
(function() {
	'use strict';
	const F = window.FIXTURES;
	const HTML_ESC = { '&': '&#38;', '"': '&#34;', "'": '&#39;', '<': '&#60;', '>': '&#62;' };
	String.prototype.format = function(...args) {
		let i = 0;
		return String(this).replace(/%(\.\d+)?([sdfth%])/g, function(m, prec, c) {
			if (c === '%') return '%';
			const a = args[i++];
			if (c === 'd') return String(Math.trunc(+a));
			if (c === 'f') return (+a).toFixed(prec ? +prec.slice(1) : 6);
			if (c === 'h') return String(a).replace(/[&"'<>]/g, function(x) { return HTML_ESC[x]; });
			if (c === 't') { const s = +a; return '%dh %dm %ds'.format(Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60); }
			return String(a);
		});
	};
	window._ = function(s) { return s; };
	function append(node, children) {
		if (Array.isArray(children)) {
			for (let i = 0; i < children.length; i++)
				node.appendChild(children[i] instanceof Node ? children[i] : document.createTextNode('' + children[i]));
			return node.lastChild;
		}
		if (typeof children === 'function') return append(node, children(node));
		if (children instanceof Node) return node.appendChild(children);
		if (children !== null && children !== undefined) { node.innerHTML = '' + children; return node.lastChild; }
		return null;
	}
	window.E = function(tag, attrs, children) {
		if (!(attrs instanceof Object) || Array.isArray(attrs)) { children = attrs; attrs = null; }
		if (attrs instanceof Node) throw new TypeError('E(tag, node): a Node is taken as attributes by LuCI');
		const el = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (typeof v === 'function') el.addEventListener(k, v);
			else if (v != null) el.setAttribute(k, typeof v === 'object' ? JSON.stringify(v) : v);
		}
		append(el, children);
		return el;
	};
	function restrict(name, impl) {
		const allowed = F.api[name];
		return new Proxy(impl, {
			get(t, k) {
				if (typeof k === 'symbol' || k === 'then' || k === 'prototype') return t[k];
				if (allowed.indexOf(k) < 0 && !(name === 'view' && k === 'extend')) throw new TypeError(name + '.' + String(k) + ' does not exist in every supported LuCI release');
				return t[k];
			}
		});
	}
	const rpc = restrict('rpc', { declare(d) {
		return function() {
			if (d.object === 'session') return Promise.resolve(F.writable !== false);
			const r = F.rpc[d.method];
			/* { sequence: [...] }: one reply per call, the last one repeated */
			return Promise.resolve(r && r.sequence ? (r.sequence.length > 1 ? r.sequence.shift() : r.sequence[0]) : r);
		};
	} });
	const ui = restrict('ui', {
		addNotification(title, children) { const n = E('div', { 'class': 'alert-message' }, []); append(n, children); document.body.appendChild(n); return n; },
		hideModal() {}, showModal() {}, createHandlerFn(ctx, fn) { return function(ev) { return fn.call(ctx, ev); }; }
	});
	/* poll: every view's refresh runs on a timer (Chromium's virtual time runs it fast). */
	const poll = restrict('poll', { add(fn, interval) { setInterval(fn, interval * 1000); } });
	const readonly = F.writable === false;
	function widget(o) {
		const def = o.default != null ? String(o.default) : '';
		const val = function(sid) { const v = ((F.uci[sid] || {})[o.name]); return v != null ? v : def; };
		const dis = readonly ? { disabled: '' } : {};
		return function(sid) {
			if (o.kind === 'Flag') return E('input', Object.assign({ type: 'checkbox' }, dis, val(sid) === '1' ? { checked: '' } : {}));
			if (o.kind === 'ListValue') return E('select', dis, o.choices.map(function(c) { return E('option', c === val(sid) ? { selected: '' } : {}, [ c ]); }));
			if (o.kind === 'DynamicList') {
				const vals = [].concat(val(sid) || []);
				return E('div', { 'class': 'dynlist' }, vals.map(function(v) { return E('div', { 'class': 'item' }, [ v ]); }).concat([E('input', Object.assign({ 'class': 'cbi-input-text', placeholder: '…' }, dis))]));
			}
			return E('input', Object.assign({ 'class': 'cbi-input-text', value: val(sid), placeholder: o.placeholder || '', readonly: o.readonly ? '' : null }, dis));
		};
	}
	/* LuCI's grid cells: textvalue, '%h'-escaped and inserted as HTML. */
	function textvalue(o, sid) {
		const v = (F.uci[sid] || {})[o.name];
		if (o.kind === 'Flag') return (v != null ? v : o.default) === '1' ? 'Yes' : 'No';
		return v == null ? '<em>-</em>' : '%h'.format([].concat(v).join(' '));
	}
	class Section {
		constructor(map, kind, type, name) { Object.assign(this, { map: map, kind: kind, type: type, name: name, options: [], tabs: [] }); }
		tab(n, title) { this.tabs.push({ n: n, title: title }); }
		option(kind, name, title, description) { const o = { kind: kind, name: name, title: title, description: description, choices: [], value(v) { this.choices.push(v); }, depends(f, v) { (this.deps = this.deps || []).push([f, v]); } }; this.options.push(o); return o; }
		taboption(tab, kind, name, title, description) { const o = this.option(kind, name, title, description); o.tab = tab; return o; }
		renderSectionAdd() { return E('div'); }
		render() {
			const self = this;
			const ro = readonly || this.map.readonly ? { disabled: '' } : {};
			if (this.kind === 'GridSection') {
				const cols = this.options.filter(function(o) { return !o.modalonly; });
				const rows = Object.keys(F.uci).filter(function(sid) { return F.uci[sid]['.type'] === self.type; });
				return E('div', { 'class': 'cbi-section' }, [
					E('table', { 'class': 'table' }, [E('tr', { 'class': 'tr table-titles' }, cols.map(function(o) { return E('th', { 'class': 'th' }, o.title); }).concat([E('th', { 'class': 'th' }, [ '' ])]))]
						.concat(rows.map(function(sid) {
							return E('tr', { 'class': 'tr', 'data-sid': sid }, cols.map(function(o) { return E('td', { 'class': 'td' }, textvalue(o, sid)); })
								.concat([E('td', { 'class': 'td' }, [E('button', Object.assign({ 'class': 'cbi-button' }, ro), [ 'Edit' ]), ' ', E('button', Object.assign({ 'class': 'cbi-button cbi-button-negative' }, ro), [ 'Delete' ])])]));
						}))),
					E('button', Object.assign({ 'class': 'cbi-button cbi-button-add' }, ro), [ 'Invite peer' ])
				]);
			}
			const sid = this.type; // NamedSection: section(form.NamedSection, 'main', 'awl')
			const byTab = this.tabs.length ? this.tabs : [{ n: undefined, title: '' }];
			return E('div', { 'class': 'cbi-section' }, byTab.map(function(t) {
				return E('fieldset', { 'class': 'cbi-tab' }, (t.title ? [ E('legend', {}, t.title) ] : []).concat(
					self.options.filter(function(o) { return o.tab === t.n; }).map(function(o) {
						return E('div', { 'class': 'cbi-value' }, [
							E('label', { 'class': 'cbi-value-title' }, o.title),
							E('div', { 'class': 'cbi-value-field' }, [widget(o)(sid)].concat(o.description ? [ E('div', { 'class': 'cbi-value-description' }, o.description) ] : []))
						]);
					})));
			}));
		}
	}
	const form = { Value: 'Value', Flag: 'Flag', ListValue: 'ListValue', DynamicList: 'DynamicList', DummyValue: 'DummyValue' };
	form.GridSection = class extends Section {};
	form.NamedSection = class extends Section {};
	form.Map = class {
		constructor(config, title, description) { Object.assign(this, { config: config, title: title, description: description, sections: [] }); this.data = { get() {} }; }
		section(cls, type, name) { const s = new cls(this, cls === form.GridSection ? 'GridSection' : 'NamedSection', type, name); this.sections.push(s); return s; }
		render() {
			const footer = E('div', { 'class': 'cbi-page-actions' }, [ E('button', Object.assign({ 'class': 'cbi-button cbi-button-apply' }, readonly || this.readonly ? { disabled: '' } : {}), [ 'Save & Apply' ]) ]);
			return Promise.resolve(E('div', { 'class': 'cbi-map' }, [E('h2', {}, this.title), E('div', { 'class': 'cbi-map-descr' }, this.description || '')]
				.concat(this.sections.map(function(s) { return s.render(); })).concat([ footer ])));
		}
		load() { return Promise.resolve(); }
		reset() { return Promise.resolve(); }
	};
	const extend = function(p) { return p; };
	const modules = { view: restrict('view', { extend: extend }), baseclass: restrict('baseclass', { extend: extend }), rpc: rpc, ui: ui, poll: poll, form: restrict('form', form) };
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
