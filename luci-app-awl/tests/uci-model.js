'use strict';
// A model of how OpenWrt's uci stages and commits changes to one config file, reproducing
// uci-vectors.json (recorded with the real uci CLI by tools/uci-vectors.sh; CI cannot build uci).
// What the vectors show, and the model does:
// - an anonymous section is named at load time 'cfg' + %02x of its position among all sections
//   (1-based, named ones counted) + %04x of djbhash(type) % 65536: the name changes when a
//   section before it disappears;
// - a staged change names its section (positions like @peer[1] are resolved when staging);
// - at commit each delta line is applied to the file as it is then; a line whose section (or
//   option, for a delete) is missing is skipped; if none applied the file is left as it is,
//   otherwise it is rewritten in uci's export format (comments are not kept).

function djbhash(str) {
	let h = 5381;
	for (const c of Buffer.from(str)) h = ((h << 5) + h + c) >>> 0;
	return h & 0x7fffffff;
}

function tokens(line) {
	const out = [];
	const re = /\s*(?:'((?:[^']|'\\'')*)'|"((?:[^"\\]|\\.)*)"|([^\s'"#]+)|(#.*))/g;
	let m;
	while ((m = re.exec(line)) && m[0].trim()) {
		if (m[4] !== undefined) break;
		out.push(m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]);
	}
	return out;
}

function parse(text) {
	const sections = [];
	let cur = null;
	for (const line of text.split('\n')) {
		const t = tokens(line);
		if (!t.length) continue;
		if (t[0] === 'config') {
			const n = sections.length + 1;
			cur = { type: t[1], name: t[2] || null, options: {} };
			cur.id = cur.name || 'cfg' + n.toString(16).padStart(2, '0') + (djbhash(t[1]) % 65536).toString(16).padStart(4, '0');
			sections.push(cur);
		} else if (t[0] === 'option') cur.options[t[1]] = t[2];
		else if (t[0] === 'list') cur.options[t[1]] = [].concat(Array.isArray(cur.options[t[1]]) ? cur.options[t[1]] : [], t[2]);
	}
	return sections;
}

const q = (v) => "'" + String(v).replace(/'/g, "'\\''") + "'";

function exportText(sections) {
	return sections.map((s) => `\nconfig ${s.type}${s.name ? ' ' + q(s.name) : ''}\n` + Object.entries(s.options).map(([k, v]) =>
		Array.isArray(v) ? v.map((x) => `\tlist ${k} ${q(x)}\n`).join('') : `\toption ${k} ${q(v)}\n`).join('')).join('');
}

// Resolves 'awl.@peer[1].alias' / 'awl.peer_A.alias' to [section id, option] in `sections`.
function resolve(sections, ref) {
	const m = /^(\w+)\.(@(\w+)\[(-?\d+)\]|[\w]+)(?:\.(\w+))?$/.exec(ref);
	if (!m) throw new Error(`bad uci reference ${ref}`);
	let id = m[2];
	if (m[3]) {
		const of = sections.filter((s) => s.type === m[3]);
		const i = +m[4] < 0 ? of.length + +m[4] : +m[4];
		if (!of[i]) throw new Error(`uci: Entry not found: ${ref}`);
		id = of[i].id;
	}
	return { pkg: m[1], id, option: m[5] || null };
}

// The delta lines uci's CLI writes for `commands` ("set awl.s.o=v", "delete awl.s.o", "add_list awl.s.o=v").
function stage(text, commands) {
	const sections = parse(text);
	return commands.map((c) => {
		const m = /^(set|delete|add_list) ([^=]+)(?:=(.*))?$/.exec(c.trim());
		const r = resolve(sections, m[2]);
		const ref = `${r.pkg}.${r.id}${r.option ? '.' + r.option : ''}`;
		if (m[1] === 'set') return `${ref}=${q(m[3])}`;
		if (m[1] === 'delete') return `-${ref}`;
		return `|${ref}=${q(m[3])}`;
	}).join('\n');
}

// `uci commit` of `delta` onto the file `text` as it is at commit time.
function commit(text, delta) {
	const sections = parse(text);
	let applied = 0;
	for (const line of delta.split('\n').filter(Boolean)) {
		const m = /^([-+|~@^]?)(\w+)\.(\w+)(?:\.(\w+))?(?:=(.*))?$/.exec(line);
		if (!m) throw new Error(`delta line not modelled: ${line}`);
		const [, op, , id, option, raw] = m;
		const value = raw === undefined ? undefined : tokens(raw)[0];
		const s = sections.find((x) => x.id === id);
		if (op === '' && !option) {
			if (s) s.type = value; else sections.push({ type: value, name: id, id, options: {} });
			applied++;
			continue;
		}
		if (!s) continue;
		if (op === '') { s.options[option] = value; applied++; }
		else if (op === '-') {
			if (!option) { sections.splice(sections.indexOf(s), 1); applied++; }
			else if (option in s.options) { delete s.options[option]; applied++; }
		} else if (op === '|') {
			const old = s.options[option];
			s.options[option] = (old === undefined ? [] : [].concat(old)).concat(value);
			applied++;
		} else throw new Error(`delta op ${op} not modelled`);
	}
	return applied ? exportText(sections) : text;
}

module.exports = { djbhash, parse, stage, commit, exportText };
