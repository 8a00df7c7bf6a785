'use strict';
// Stand-ins for LuCI's runtime (L, E, _, form, rpc, ui, poll, view, baseclass) that record
// what a view declares and calls, and a loader that evaluates view files the way LuCI does:
// every `'require x'` line becomes a parameter named after the module's last path component.

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const RES = path.join(__dirname, '..', 'htdocs', 'luci-static', 'resources');

// LuCI's String.prototype.format subset used by the views.
function format(fmt, ...args) {
	let i = 0;
	return fmt.replace(/%(\.\d+)?([sdft%])/g, (m, prec, conv) => {
		if (conv === '%') return '%';
		const a = args[i++];
		if (conv === 'd') return String(Math.trunc(+a));
		if (conv === 'f') return (+a).toFixed(prec ? +prec.slice(1) : 6);
		if (conv === 't') return `${a}s`;
		return String(a);
	});
}

// A tiny element tree: enough for views to build and for tests to find and click things.
class Node {
	constructor(tag, attrs, children) {
		this.tag = tag;
		this.attrs = attrs || {};
		this.style = {};
		this.children = [];
		this.parentNode = null;
		this.id = this.attrs.id;
		this.value = '';
		this.append(children);
	}
	append(c) {
		if (c == null) return;
		if (Array.isArray(c)) return c.forEach((x) => this.append(x));
		if (!(c instanceof Node)) c = new Node('#text', { text: String(c) });
		c.parentNode = this;
		this.children.push(c);
	}
	appendChild(c) { this.append(c); return c; }
	replaceChild(n, o) { const i = this.children.indexOf(o); if (i >= 0) { this.children[i] = n; n.parentNode = this; } }
	get textContent() { return this.tag === '#text' ? this.attrs.text : this.children.map((c) => c.textContent).join(''); }
	set textContent(t) { this.children = []; this.append(String(t)); }
	querySelector() { return null; }
	all() { return [this].concat(...this.children.map((c) => c.all())); }
	find(pred) { return this.all().find(pred); }
	byId(id) { return this.find((n) => n.attrs.id === id); }
	button(text) { return this.find((n) => n.tag === 'button' && n.textContent === text); }
	click() { return this.attrs.click && this.attrs.click({ target: this }); }
}

function E(tag, attrs, children) {
	if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof Node) return new Node(tag, {}, attrs);
	return new Node(tag, attrs, children);
}

// form.*: every option records its class, name and properties.
function makeForm(rec) {
	class AbstractValue {
		constructor(kind, section, name, title, description) {
			Object.assign(this, { kind, section, name, title, description, choices: [] });
		}
		value(v, label) { this.choices.push(v); }
		depends(field, v) { (this.deps = this.deps || []).push([field, v]); }
	}
	const option = (kind) => kind;
	const form = {
		Value: option('Value'), Flag: option('Flag'), ListValue: option('ListValue'),
		DynamicList: option('DynamicList'), GridSection: null, NamedSection: null, TypedSection: null
	};
	class Section {
		constructor(map, kind, type, name) { Object.assign(this, { map, kind, type, name, options: [], tabs: [] }); }
		tab(n) { this.tabs.push(n); }
		option(kind, name, title, description) {
			const o = new AbstractValue(kind, this, name, title, description);
			this.options.push(o);
			return o;
		}
		taboption(tab, kind, name, title, description) { const o = this.option(kind, name, title, description); o.tab = tab; return o; }
		renderSectionAdd() { return new Node('div'); }
	}
	class GridSection extends Section {}
	class NamedSection extends Section {}
	form.GridSection = GridSection;
	form.NamedSection = NamedSection;
	form.TypedSection = Section;
	form.Map = class {
		constructor(config, title, description) {
			Object.assign(this, { config, title, description, sections: [] });
			this.data = { get: (c, s, o) => (rec.uci[s] || {})[o] };
			rec.maps.push(this);
		}
		section(cls, type, name) {
			const kind = cls === GridSection ? 'GridSection' : cls === NamedSection ? 'NamedSection' : 'TypedSection';
			const s = new cls(this, kind, type, name);
			this.sections.push(s);
			return s;
		}
		render() { return Promise.resolve(new Node('div', { class: 'cbi-map' })); }
		load() { rec.reloads++; return Promise.resolve(); }
		reset() { return Promise.resolve(); }
	};
	return form;
}

// Creates a sandbox: `replies` maps rpc method names to reply objects (or functions of args).
function sandbox(replies = {}) {
	const rec = { rpcCalls: [], declared: [], notifications: [], modals: [], polls: [], maps: [], uci: {}, reloads: 0, confirm: true };
	const rpc = {
		declare(d) {
			rec.declared.push({ object: d.object, method: d.method, params: d.params || [] });
			return (...args) => {
				const params = {};
				(d.params || []).forEach((p, i) => { params[p] = args[i]; });
				rec.rpcCalls.push({ object: d.object, method: d.method, params });
				const r = replies[d.method];
				return Promise.resolve(typeof r === 'function' ? r(params) : r);
			};
		}
	};
	const ui = {
		addNotification(title, body, kind) { rec.notifications.push({ kind, text: body.textContent }); },
		addTimeLimitedNotification(title, body, t, kind) { rec.notifications.push({ kind, text: body.textContent }); },
		showModal(title, content) { const n = new Node('div', {}, content); rec.modals.push({ title, node: n }); return n; },
		hideModal() { rec.modalClosed = true; },
		createHandlerFn(ctx, fn) { return (ev) => fn.call(ctx, ev); }
	};
	const poll = { add(fn, interval) { rec.polls.push({ fn, interval }); } };
	const extend = (proto) => proto;
	const modules = {
		view: { extend }, baseclass: { extend }, rpc, ui, poll, form: makeForm(rec),
		dom: {}, uci: {}, network: {}
	};
	const context = vm.createContext({
		console, Promise, Date, Math, JSON, navigator: {}, document: { getElementById: () => null },
		confirm: () => rec.confirm, E, _: (s) => s, L: { resolveDefault: (p, d) => Promise.resolve(p).catch(() => d) }
	});
	vm.runInContext('String.prototype.format = function(...a) { return fmt(String(this), ...a); };', Object.assign(context, { fmt: format }));

	function load(rel) {
		const file = path.join(RES, rel);
		const src = fs.readFileSync(file, 'utf8');
		const names = [];
		const values = [];
		for (const m of src.matchAll(/^'require ([\w.]+)(?: as (\w+))?';$/gm)) {
			const mod = m[1];
			const name = m[2] || mod.split('.').pop();
			names.push(name);
			values.push(modules[mod] || load(mod.replace(/\./g, '/') + '.js'));
		}
		const fn = vm.runInContext(`(function(${names.join(',')}) {\n${src}\n})`, context, { filename: file });
		const result = fn(...values);
		if (!result) throw new Error(`${rel} returned nothing`);
		modules[rel.replace(/\.js$/, '').replace(/\//g, '.')] = result;
		return result;
	}
	return { rec, load, Node };
}

module.exports = { sandbox, Node, format, RES };
