#!/usr/bin/env node
'use strict';
// Writes po/templates/awl.pot: every _('…') string of the app's JavaScript and the titles of
// its menu.d entries, sorted by msgid, with their file:line references, as LuCI's
// build/i18n-scan.pl does for luci-app-* packages.
// Usage: node luci-app-awl/tests/tools/make-pot.js [--check]
//   --check: exit 1 when the file on disk is not what this script would write.
const fs = require('node:fs');
const path = require('node:path');

const APP = path.join(__dirname, '..', '..');
const POT = path.join(APP, 'po', 'templates', 'awl.pot');

function files(dir) {
	return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
		const p = path.join(dir, e.name);
		return e.isDirectory() ? files(p) : [p];
	}).sort();
}

const unescapeJS = (s) => s.replace(/\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)/g, (m, c) =>
	c[0] === 'u' || (c[0] === 'x' && c.length === 3) ? String.fromCharCode(parseInt(c.slice(1), 16)) : c === 'n' ? '\n' : c === 't' ? '\t' : c);
const escapePO = (s) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t');

function pot() {
	const refs = new Map();
	const add = (msgid, where) => { if (msgid) refs.set(msgid, (refs.get(msgid) || []).concat(where)); };
	for (const f of files(path.join(APP, 'htdocs'))) {
		if (!f.endsWith('.js')) continue;
		const rel = path.relative(APP, f);
		fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
			for (const m of line.matchAll(/(?<![\w$.])_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*[,)]/g))
				add(unescapeJS(m[1] !== undefined ? m[1] : m[2]), `${rel}:${i + 1}`);
		});
	}
	for (const f of files(path.join(APP, 'root/usr/share/luci/menu.d'))) {
		const rel = path.relative(APP, f);
		const lines = fs.readFileSync(f, 'utf8').split('\n');
		lines.forEach((line, i) => {
			const m = /^\s*"title":\s*"((?:[^"\\]|\\.)*)"/.exec(line);
			if (m) add(JSON.parse(`"${m[1]}"`), `${rel}:${i + 1}`);
		});
	}
	let out = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n';
	for (const id of [...refs.keys()].sort()) {
		out += `\n#: ${refs.get(id).join('\n#: ')}\nmsgid "${escapePO(id)}"\nmsgstr ""\n`;
	}
	return out;
}

if (require.main === module) {
	const text = pot();
	if (process.argv.includes('--check')) {
		const ok = fs.existsSync(POT) && fs.readFileSync(POT, 'utf8') === text;
		if (!ok) console.error(`${POT} is out of date: run node luci-app-awl/tests/tools/make-pot.js`);
		process.exit(ok ? 0 : 1);
	}
	fs.mkdirSync(path.dirname(POT), { recursive: true });
	fs.writeFileSync(POT, text);
}

module.exports = { pot, POT };
