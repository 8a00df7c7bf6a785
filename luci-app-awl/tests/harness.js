'use strict';
// Stand-ins for LuCI's runtime (L, E, _, form, rpc, ui, poll, view, baseclass, dom) that record
// what a view declares and calls, and a loader that evaluates view files the way LuCI does:
// every `'require x'` line becomes a parameter named after the module's last path component.
//
// Faithful where it matters (see luci-api.json, read from LuCI's sources per release):
// - each module exposes only the members every supported LuCI release has; touching any other
//   member throws, so a call that one release lacks fails a test;
// - E()/dom.append/dom.content treat children as LuCI does: a bare string child (not in an
//   array) is HTML (innerHTML), an array item that is not a Node becomes a text node (null
//   becomes the text "null", as on openwrt-23.05), and a Node passed as the attribute argument
//   is not a child;
// - ui.addNotification/ui.showModal put title and children through the same rules.

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const RES = path.join(__dirname, '..', 'htdocs', 'luci-static', 'resources');
const acl = require('./rpcd-acl');
const API = JSON.parse(fs.readFileSync(path.join(__dirname, 'luci-api.json'), 'utf8'));

const HTML_ESC = { '&': '&#38;', '"': '&#34;', "'": '&#39;', '<': '&#60;', '>': '&#62;' };
const escapeHTML = (s) => String(s).replace(/[&"'<>]/g, (c) => HTML_ESC[c]);

// LuCI's String.prototype.format subset used by the views (%h escapes HTML, %s does not).
function format(fmt, ...args) {
	let i = 0;
	return fmt.replace(/%(\.\d+)?([sdfth%])/g, (m, prec, conv) => {
		if (conv === '%') return '%';
		const a = args[i++];
		if (conv === 'd') return String(Math.trunc(+a));
		if (conv === 'f') return (+a).toFixed(prec ? +prec.slice(1) : 6);
		if (conv === 't') return `${a}s`;
		if (conv === 'h') return escapeHTML(a);
		return String(a);
	});
}

// A tiny element tree: enough for views to build and for tests to find and click things.
class Node {
	constructor(tag, attrs) {
		this.tag = tag;
		this.attrs = attrs || {};
		this.style = {};
		this.children = [];
		this.parentNode = null;
		this.id = this.attrs.id;
		this.value = '';
		this.disabled = 'disabled' in this.attrs && this.attrs.disabled != null && this.attrs.disabled !== false;
	}
	appendChild(c) { c.parentNode = this; this.children.push(c); return c; }
	removeChild(c) { this.children = this.children.filter((x) => x !== c); return c; }
	get firstChild() { return this.children[0] || null; }
	get lastChild() { return this.children.at(-1) || null; }
	replaceChild(n, o) { const i = this.children.indexOf(o); if (i >= 0) { this.children[i] = n; n.parentNode = this; } }
	get textContent() { return this.tag === '#text' ? this.attrs.text : this.children.map((c) => c.textContent).join(''); }
	set textContent(t) { this.children = []; this.appendChild(new Node('#text', { text: String(t) })); }
	// innerHTML parses markup, as a browser does: tags become elements (with their attributes).
	set innerHTML(html) { this.children = []; parseHTML(String(html)).forEach((c) => this.appendChild(c)); }
	setAttribute(k, v) { this.attrs[k] = String(v); if (k === 'disabled') this.disabled = true; }
	getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
	removeAttribute(k) { delete this.attrs[k]; if (k === 'disabled') this.disabled = false; }
	addEventListener(k, fn) { this.attrs[k] = fn; }
	querySelector() { return null; }
	all() { return [this].concat(...this.children.map((c) => c.all())); }
	find(pred) { return this.all().find(pred); }
	byId(id) { return this.find((n) => n.attrs.id === id); }
	button(text) { return this.find((n) => n.tag === 'button' && n.textContent === text); }
	buttons() { return this.all().filter((n) => n.tag === 'button'); }
	click() { return !this.disabled && typeof this.attrs.click === 'function' && this.attrs.click({ target: this }); }
}

// Enough of an HTML parser to show what markup a string turned into.
function parseHTML(html) {
	const root = new Node('#fragment');
	let cur = root;
	const re = /<\/?([a-zA-Z][\w-]*)([^>]*)>|([^<]+)/g;
	let m;
	while ((m = re.exec(html))) {
		if (m[3] != null) { cur.appendChild(new Node('#text', { text: m[3].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') })); continue; }
		if (m[0][1] === '/') { if (cur.parentNode) cur = cur.parentNode; continue; }
		const attrs = { parsedFromHTML: true };
		for (const a of m[2].matchAll(/([^\s=/]+)(?:=("[^"]*"|'[^']*'|[^\s>]+))?/g)) attrs[a[1].toLowerCase()] = (a[2] || '').replace(/^["']|["']$/g, '');
		const el = new Node(m[1].toLowerCase(), attrs);
		cur.appendChild(el);
		if (!/^(img|br|input|hr|meta|link)$/i.test(m[1]) && !m[2].endsWith('/')) cur = el;
	}
	const out = root.children;
	out.forEach((c) => { c.parentNode = null; });
	return out;
}

const isNode = (x) => x instanceof Node;

// LuCI's dom.append: arrays give text nodes, a bare string is HTML.
function append(node, children) {
	if (Array.isArray(children)) {
		for (const c of children) {
			if (isNode(c)) node.appendChild(c);
			else node.appendChild(new Node('#text', { text: '' + c }));
		}
		return node.lastChild;
	}
	if (typeof children === 'function') return append(node, children(node));
	if (isNode(children)) return node.appendChild(children);
	if (children !== null && children !== undefined) { node.innerHTML = '' + children; return node.lastChild; }
	return null;
}

// LuCI's dom.create (E): attributes only when the second argument is a non-array Object.
function E(tag, attrs, children) {
	// (LuCI tests `attrs instanceof Object`; the views run in another realm here.)
	const isObject = (attrs !== null && typeof attrs === 'object') || typeof attrs === 'function';
	if (!isObject || Array.isArray(attrs)) { children = attrs; attrs = null; }
	if (isNode(attrs)) throw new TypeError('E(tag, node): LuCI takes a Node there as the attribute object, not as a child: pass [node]');
	if (typeof tag === 'string' && tag.charCodeAt(0) === 60) throw new TypeError('E() with markup');
	const el = Array.isArray(tag) ? new Node('#fragment') : new Node(tag);
	if (Array.isArray(tag)) tag.forEach((t) => el.appendChild(isNode(t) ? t : E(t)));
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined) continue;
		if (typeof v === 'function') el.attrs[k] = v;
		else el.setAttribute(k, typeof v === 'object' ? JSON.stringify(v) : v);
		if (k === 'id') el.id = v;
	}
	append(el, children);
	return el;
}

// A module object that throws on any member the supported LuCI releases do not all have.
function restrict(name, impl) {
	const allowed = API.intersection[name];
	if (!allowed) throw new Error(`no API record for ${name}`);
	for (const k of Object.keys(impl))
		if (!allowed.includes(k)) throw new Error(`stand-in bug: ${name}.${k} is not in every supported LuCI release`);
	return new Proxy(impl, {
		get(t, k) {
			if (typeof k === 'symbol' || k === 'then' || k === 'prototype' || k === 'toJSON') return t[k];
			if (!allowed.includes(k)) {
				const missing = Object.entries(API.releases).filter(([, r]) => !(r.modules[name] || []).includes(k)).map(([b]) => b);
				throw new TypeError(`${name}.${String(k)} does not exist in LuCI ${missing.join(', ')}`);
			}
			if (!(k in t)) throw new TypeError(`${name}.${String(k)} exists in LuCI but the test stand-in lacks it`);
			return t[k];
		}
	});
}

// Checks that a stand-in class offers only methods the LuCI class has on every release.
function checkClass(name, cls) {
	const allowed = API.intersection[name];
	for (let p = cls.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p))
		for (const k of Object.getOwnPropertyNames(p))
			if (k !== 'constructor' && typeof p[k] === 'function' && !allowed.includes(k))
				throw new Error(`stand-in bug: ${name}.${k} is not in every supported LuCI release`);
	return cls;
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
	checkClass('form.Value', AbstractValue);
	const option = (kind) => kind;
	class Section {
		constructor(map, kind, type, name) { Object.assign(this, { map, kind, type, name, options: [], tabs: [] }); }
		tab(n) { this.tabs.push(n); }
		option(kind, name, title, description) {
			const o = new AbstractValue(kind, this, name, title, description);
			this.options.push(o);
			return o;
		}
		taboption(tab, kind, name, title, description) { const o = this.option(kind, name, title, description); o.tab = tab; return o; }
	}
	class GridSection extends Section {
		renderSectionAdd() { return new Node('div'); }
		// LuCI's GridSection rows: one per section of the type, addressed by section name.
		cfgsections() { return Object.keys(rec.uci).filter((s) => rec.uci[s]['.type'] === this.type); }
	}
	class NamedSection extends Section {}
	checkClass('form.GridSection', GridSection);
	checkClass('form.NamedSection', NamedSection);
	class CBIMap {
		constructor(config, title, description) {
			Object.assign(this, { config, title, description, sections: [], readonly: null });
			this.data = { get: (c, s, o) => (rec.uci[s] || {})[o] };
			rec.maps.push(this);
		}
		section(cls, type, name) {
			const kind = cls === GridSection ? 'GridSection' : cls === NamedSection ? 'NamedSection' : 'TypedSection';
			const s = new cls(this, kind, type, name);
			this.sections.push(s);
			return s;
		}
		// LuCI's Map.load asks rpcd whether the session may write the config (session.access).
		load() {
			rec.reloads++;
			if (this.readonly == null && !acl.allowed(rec.grants, 'uci', this.config, 'write')) this.readonly = true;
			return Promise.resolve();
		}
		// LuCI's Map.render loads first (which settles readonly), then renders.
		render() { return this.load().then(() => { rec.rendered.push(this); return new Node('div', { class: 'cbi-map' }); }); }
		reset() { return Promise.resolve(); }
	}
	checkClass('form.Map', CBIMap);
	return restrict('form', {
		Map: CBIMap, Value: option('Value'), Flag: option('Flag'), ListValue: option('ListValue'),
		DynamicList: option('DynamicList'), DummyValue: option('DummyValue'), GridSection, NamedSection, TypedSection: Section
	});
}

// Creates a sandbox: `replies` maps rpc method names to reply objects (or functions of args).
// opts.session: 'readonly' logs in as a user granted only the read side of luci-app-awl (rpcd-acl.js).
function sandbox(replies = {}, opts = {}) {
	const rec = {
		rpcCalls: [], declared: [], notifications: [], modals: [], polls: [], maps: [], rendered: [], uci: {},
		reloads: 0, confirm: true, timers: [], grants: acl.grants(acl.LOGINS[opts.session || 'root']), denied: []
	};
	const rpc = restrict('rpc', {
		declare(d) {
			rec.declared.push({ object: d.object, method: d.method, params: d.params || [] });
			return (...args) => {
				const params = {};
				(d.params || []).forEach((p, i) => { params[p] = args[i]; });
				// rpcd's own session.access: may this login call object.method / touch a uci config?
				if (d.object === 'session' && d.method === 'access') {
					const ok = acl.allowed(rec.grants, params.scope, params.object, params.function);
					return Promise.resolve(d.expect && 'access' in d.expect ? ok : { access: ok });
				}
				if (!acl.allowed(rec.grants, 'ubus', d.object, d.method)) {
					rec.denied.push(`${d.object}.${d.method}`);
					return Promise.reject(new Error('Access denied'));
				}
				rec.rpcCalls.push({ object: d.object, method: d.method, params });
				const r = replies[d.method];
				return Promise.resolve(typeof r === 'function' ? r(params) : r);
			};
		}
	});
	const modal = (title, children) => { const n = E('div', {}, []); append(n, E('h4', {}, title)); append(n, children); return n; };
	const ui = restrict('ui', {
		addNotification(title, children, ...classes) {
			const n = modal(title, children);
			rec.notifications.push(Object.defineProperty({ kind: classes.join(' '), text: n.textContent }, 'node', { value: n }));
			return n;
		},
		showModal(title, children) { const n = modal(title, children); rec.modals.push({ title, node: n }); return n; },
		hideModal() { rec.modalClosed = true; },
		createHandlerFn(ctx, fn) { return (ev) => (typeof fn === 'string' ? ctx[fn] : fn).call(ctx, ev); }
	});
	const poll = restrict('poll', { add(fn, interval) { rec.polls.push({ fn, interval }); } });
	const dom = restrict('dom', { append, content(n, c) { n.children = []; return append(n, c); }, create: E });
	const view = restrict('view', {});
	const extend = (proto) => proto;
	const modules = {
		view: Object.assign(Object.create(view), { extend }), baseclass: restrict('baseclass', { extend }), rpc, ui, poll, form: makeForm(rec), dom
	};
	const L = restrict('L', { resolveDefault: (p, d) => Promise.resolve(p).catch(() => d), bind: (fn, self, ...a) => fn.bind(self, ...a) });
	const context = vm.createContext({
		console, Promise, Date, Math, JSON, navigator: {}, document: { getElementById: () => null, createTextNode: (t) => new Node('#text', { text: String(t) }), createElementNS: (ns, tag) => new Node(tag) },
		setTimeout, clearTimeout, window: { setTimeout: (fn, t) => { rec.timers.push({ fn, t }); return rec.timers.length; }, clearTimeout() {} },
		confirm: () => rec.confirm, E, _: (s) => s, N_: (n, s, p) => (n === 1 ? s : p), L
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
	return { rec, load, Node, modules: Object.assign({ L }, modules) };
}

// Nodes made from markup (innerHTML) or carrying an event-handler attribute: injected HTML.
function injected(node) {
	return node.all().filter((n) => n.attrs.parsedFromHTML || Object.keys(n.attrs).some((k) => /^on/i.test(k)));
}

module.exports = { sandbox, Node, E, append, format, injected, RES, API };
