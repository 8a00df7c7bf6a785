#!/usr/bin/env node
'use strict';
// Reads LuCI's own luci-base sources on each release branch and prints, as JSON, which members
// the app may touch exist there: the modules `L`, `baseclass`, `dom`, `poll`, `request`,
// `session`, `view` (luci.js), `ui`, `form` (+ each form class), `rpc`, `uci` and
// String.prototype (cbi.js/luci.js), plus the globals luci.js/cbi.js define on `window`.
// Only names are recorded (no LuCI code).
//
// Usage (any git clone of LuCI with the release branches; acorn from the npm registry):
//   npm install --prefix /tmp/acorn acorn acorn-walk
//   NODE_PATH=/tmp/acorn/node_modules node luci-app-awl/tests/tools/extract-luci-api.js \
//     LUCI_GIT_DIR openwrt-23.05 openwrt-24.10 master > luci-app-awl/tests/luci-api.json
const { execFileSync } = require('node:child_process');
const acorn = require('acorn');
const walk = require('acorn-walk');

const [gitDir, ...branches] = process.argv.slice(2);
const RES = 'modules/luci-base/htdocs/luci-static/resources';
const show = (ref, file) => execFileSync('git', ['--git-dir', gitDir, 'show', `${ref}:${RES}/${file}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
const parse = (src) => acorn.parse(src, { ecmaVersion: 'latest', allowReturnOutsideFunction: true, allowHashBang: true });
const keyName = (p) => p.key && (p.key.type === 'Identifier' ? p.key.name : p.key.value);

// Every `NAME = BASE.extend({…})` / `.singleton({…})` in a file: own member names and base.
function classes(ast) {
	const out = {};
	const note = (name, init) => {
		if (!init || init.type !== 'CallExpression' || init.callee.type !== 'MemberExpression') return;
		const m = init.callee.property.name;
		if (m !== 'extend' && m !== 'singleton') return;
		const obj = init.arguments.find((a) => a.type === 'ObjectExpression');
		if (!obj) return;
		out[name] = {
			base: init.callee.object.type === 'Identifier' ? init.callee.object.name : null,
			own: obj.properties.filter((p) => p.type === 'Property').map(keyName).filter(Boolean),
			refs: Object.fromEntries(obj.properties.filter((p) => p.type === 'Property' && p.value.type === 'Identifier').map((p) => [keyName(p), p.value.name]))
		};
	};
	walk.full(ast, (n) => {
		if (n.type === 'VariableDeclarator' && n.id.type === 'Identifier') note(n.id.name, n.init);
		if (n.type === 'AssignmentExpression' && n.left.type === 'Identifier') note(n.left.name, n.right);
	});
	return out;
}
function members(cls, name, seen = new Set()) {
	const c = cls[name];
	if (!c || seen.has(name)) return [];
	seen.add(name);
	return [...new Set([...members(cls, c.base, seen), ...c.own])];
}
const publicNames = (list) => list.filter((k) => !k.startsWith('__')).sort();

// The object a module file returns: `return X;` or `return baseclass.extend({…});`.
function returned(ast, cls) {
	const ret = ast.body.filter((n) => n.type === 'ReturnStatement').pop();
	if (ret.argument.type === 'Identifier') return ret.argument.name;
	const decl = { type: 'VariableDeclarator', id: { type: 'Identifier', name: '$module' }, init: ret.argument };
	Object.assign(cls, classes({ type: 'VariableDeclaration', kind: 'var', declarations: [decl] }));
	return '$module';
}

function globals(ast) {
	const out = new Set(ast.body.filter((n) => n.type === 'FunctionDeclaration').map((n) => n.id.name));
	walk.full(ast, (n) => {
		if (n.type === 'AssignmentExpression' && n.left.type === 'MemberExpression' && !n.left.computed) {
			const o = n.left.object;
			if (o.type === 'Identifier' && o.name === 'window') out.add(n.left.property.name);
			if (o.type === 'MemberExpression' && o.object.name === 'String' && o.property.name === 'prototype') out.add('String.prototype.' + n.left.property.name);
		}
	});
	return out;
}

const result = { extracted_with: 'luci-app-awl/tests/tools/extract-luci-api.js', releases: {} };
for (const ref of branches) {
	const commit = execFileSync('git', ['--git-dir', gitDir, 'rev-parse', ref], { encoding: 'utf8' }).trim();
	const date = execFileSync('git', ['--git-dir', gitDir, 'log', '-1', '--format=%cs', ref], { encoding: 'utf8' }).trim();
	const mods = {};
	const luci = parse(show(ref, 'luci.js'));
	const lc = classes(luci);
	for (const [mod, cls] of [['L', 'LuCI'], ['dom', 'DOM'], ['poll', 'Poll'], ['request', 'Request'], ['session', 'Session'], ['view', 'View']])
		mods[mod] = publicNames(members(lc, cls));
	// baseclass: `Class = Object.assign(function() {}, { extend, singleton, isSubclass })`
	walk.full(luci, (n) => {
		if (n.type === 'VariableDeclarator' && n.id.name === 'Class' && n.init && n.init.type === 'CallExpression')
			mods.baseclass = publicNames(n.init.arguments[1].properties.map(keyName));
	});
	const g = globals(luci);
	for (const x of globals(parse(show(ref, 'cbi.js')))) g.add(x);
	mods.globals = [...g].sort();
	for (const file of ['ui', 'form', 'rpc', 'uci']) {
		const ast = parse(show(ref, `${file}.js`));
		const cls = classes(ast);
		const top = returned(ast, cls);
		mods[file] = publicNames(members(cls, top));
		if (file === 'form' || file === 'ui')
			for (const [k, v] of Object.entries(cls[top].refs))
				if (cls[v] && /^[A-Z]/.test(k)) mods[`${file}.${k}`] = publicNames(members(cls, v));
	}
	result.releases[ref] = { commit, date, modules: mods };
}
const all = Object.values(result.releases).map((r) => r.modules);
result.intersection = {};
for (const mod of Object.keys(all[0]))
	result.intersection[mod] = all[0][mod].filter((k) => all.every((m) => (m[mod] || []).includes(k)));
process.stdout.write(JSON.stringify(result, null, '\t') + '\n');
