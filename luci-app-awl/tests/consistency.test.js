'use strict';
// The views against the daemon: every UCI option they use exists in `awl config schema` with a
// compatible type and range; every rpc method they call is granted in acl.d and offered by the
// backend; menu.d and acl.d parse; and the backend answers a real running daemon with JSON.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn, spawnSync } = require('node:child_process');
const { sandbox } = require('./harness');

const APP = path.join(__dirname, '..');
const REPO = path.join(APP, '..');
const BACKEND = path.join(APP, 'root/usr/libexec/rpcd/awl');

function awlBin() {
	if (process.env.AWL_BIN) return process.env.AWL_BIN;
	execFileSync('cargo', ['build', '--quiet', '--bin', 'awl'], { cwd: REPO, stdio: 'inherit' });
	return path.join(REPO, 'target/debug/awl');
}
const AWL = awlBin();
const schema = JSON.parse(execFileSync(AWL, ['config', 'schema'], { encoding: 'utf8' }));

function viewOptions() {
	const { rec, load } = sandbox();
	load('view/awl/settings.js').render();
	load('view/awl/peers.js').render();
	const out = [];
	for (const m of rec.maps) {
		assert.equal(m.config, 'awl');
		for (const s of m.sections)
			for (const o of s.options) out.push({ section: s.kind === 'NamedSection' ? 'awl' : s.type, o });
	}
	return { out, rec };
}

// Is LuCI's widget + datatype compatible with the daemon's option kind?
function compatible(o, d) {
	const dt = o.datatype || '';
	const range = /^range\((\d+),(\d+)\)$/.exec(dt);
	const maxlen = /^maxlength\((\d+)\)$/.exec(dt);
	if (o.kind === 'DynamicList' && !d.list) return 'is a list in LuCI but not in the daemon';
	if (d.list && o.kind !== 'DynamicList') return 'is a list in the daemon';
	switch (d.type) {
	case 'bool': return o.kind === 'Flag' || 'should be a Flag';
	case 'int':
		if (!range) return `needs range(${d.min},${d.max})`;
		return (+range[1] === d.min && +range[2] === d.max) || `range(${range[1]},${range[2]}) != ${d.min}..${d.max}`;
	case 'enum':
		return (o.kind === 'ListValue' && o.choices.every((c) => d.values.includes(c))) || `choices ${o.choices} not in ${d.values}`;
	case 'cidr4': case 'prefix4': return dt === 'cidr4' || `datatype ${dt} for ${d.type}`;
	case 'ipv4': return dt.startsWith('ip4addr') || `datatype ${dt} for ipv4`;
	case 'string': case 'label': case 'ifname':
		return (!maxlen || +maxlen[1] <= (d.max_len || (d.type === 'label' ? 63 : 15))) || `maxlength ${maxlen[1]} > ${d.max_len}`;
	case 'peer_id': return typeof o.validate === 'function' || 'peer ID needs validation';
	case 'multiaddr': case 'path': return true;
	default: return `unknown schema type ${d.type}`;
	}
}

test('every option the views use exists in the daemon schema, with compatible type and range', () => {
	const { out } = viewOptions();
	assert.ok(out.length > 20);
	for (const { section, o } of out) {
		const d = (schema.sections[section] || { options: [] }).options.find((x) => x.name === o.name);
		assert.ok(d, `${section}.${o.name} is not in 'awl config schema'`);
		const ok = compatible(o, d);
		assert.equal(ok, true, `${section}.${o.name}: ${ok}`);
	}
});

test('menu.d and acl.d are valid JSON, the menu needs the acl', () => {
	const menu = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/luci/menu.d/luci-app-awl.json'), 'utf8'));
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'));
	assert.deepEqual(menu['admin/vpn/awl'].depends.acl, ['luci-app-awl']);
	for (const v of ['status', 'peers', 'settings'])
		assert.equal(menu[`admin/vpn/awl/${v}`].action.path, `awl/${v}`);
	for (const p of Object.keys(menu).filter((k) => menu[k].action.type === 'view'))
		assert.ok(fs.existsSync(path.join(APP, 'htdocs/luci-static/resources/view', menu[p].action.path + '.js')), p);
	// Least privilege: the read group can't change anything.
	assert.equal(acl['luci-app-awl'].write, undefined);
	assert.ok(acl['luci-app-awl-write'].write.ubus.awl.includes('invite'));
});

test('every rpc method the views call is granted in acl.d and offered by the backend', () => {
	const { rec, load } = sandbox();
	for (const v of ['status', 'peers', 'settings']) load(`view/awl/${v}.js`);
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'));
	const granted = new Set();
	for (const g of Object.values(acl))
		for (const mode of ['read', 'write'])
			for (const m of ((g[mode] || {}).ubus || {}).awl || []) granted.add(m);
	const offered = JSON.parse(execFileSync('sh', [BACKEND, 'list'], { encoding: 'utf8' }));
	assert.ok(rec.declared.length >= 7);
	for (const d of rec.declared) {
		assert.equal(d.object, 'awl');
		assert.ok(granted.has(d.method), `${d.method} not granted in acl.d`);
		assert.ok(d.method in offered, `${d.method} not offered by the backend`);
		for (const p of d.params) assert.ok(p in offered[d.method], `${d.method}.${p} not declared by the backend`);
	}
});

// Runs a real daemon (in its own network namespace when root, so its TUN stays there).
test('the rpcd backend answers from a running daemon', async (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'awl-luci-'));
	const cfg = path.join(dir, 'awl.uci');
	fs.writeFileSync(cfg, [
		"config awl 'main'", "\toption name 'luci-test'", "\toption listen_port '0'",
		"\toption use_default_bootstrap '0'", `\toption data_dir '${dir}'`,
		`\toption control_socket '${dir}/awl.sock'`, "\toption interface 'awlluci0'", ''
	].join('\n'));
	const root = process.getuid && process.getuid() === 0;
	const ns = `awl-luci-${process.pid}`;
	let cmd = [AWL, '-c', cfg, 'run'];
	if (root && spawnSync('ip', ['netns', 'add', ns]).status === 0) cmd = ['ip', 'netns', 'exec', ns, ...cmd];
	const daemon = spawn(cmd[0], cmd.slice(1), { stdio: 'ignore' });
	t.after(() => { daemon.kill('SIGTERM'); spawnSync('ip', ['netns', 'del', ns]); fs.rmSync(dir, { recursive: true, force: true }); });
	const env = { ...process.env, AWL_BIN: AWL, AWL_CONFIG: cfg };
	const call = (method, args) => JSON.parse(execFileSync('sh', [BACKEND, 'call', method], { input: JSON.stringify(args), env, encoding: 'utf8' }));
	for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'awl.sock')); i++) await new Promise((r) => setTimeout(r, 100));

	const st = call('status', {});
	assert.equal(st.ok, true, JSON.stringify(st));
	assert.match(st.result.peer_id, /^12D3KooW/);
	assert.equal(st.result.name, 'luci-test');
	assert.deepEqual(call('peers', {}), { ok: true, result: [] });
	const bad = call('invite', { peer_id: 'nope' });
	assert.equal(bad.ok, false);
	assert.match(bad.error, /peer ID/);
	const inv = call('invite', { peer_id: '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7', alias: 'office' });
	assert.equal(inv.ok, true, JSON.stringify(inv));
	assert.equal(inv.result.ip, '10.66.0.2');
	assert.match(fs.readFileSync(cfg, 'utf8'), /option alias 'office'/, 'the daemon wrote the peer section');
	assert.equal(call('peers', {}).result[0].alias, 'office');
	assert.equal(call('nonsense', {}).ok, false);

	daemon.kill('SIGTERM');
	await new Promise((r) => daemon.on('exit', r));
	const down = call('status', {});
	assert.equal(down.ok, false, 'a stopped daemon gives a JSON error, not garbage');
});
