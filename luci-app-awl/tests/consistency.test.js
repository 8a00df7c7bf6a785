'use strict';
// The views against the daemon: every UCI option they use exists in `awl config schema` with a
// compatible type and range; every rpc method they call is granted in acl.d and offered by the
// backend; menu.d and acl.d parse; and the backend answers a real running daemon with JSON.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sandbox } = require('./harness');
const { awlBin, rpcdSupport, startDaemon } = require('./daemon');

const APP = path.join(__dirname, '..');
const BACKEND = path.join(APP, 'root/usr/libexec/rpcd/awl');
const VIEWS = ['status', 'peers', 'graphs', 'settings', 'logs'];

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
		if (o.default !== undefined && d.default !== undefined)
			assert.equal(String(o.default), String(d.default), `${section}.${o.name}: default ${o.default} in LuCI, ${d.default} in the daemon`);
	}
});

// The backend is `awl rpcd …`; a daemon binary older than that command cannot be tested here.
const RPCD = rpcdSupport(AWL);

test('menu.d and acl.d are valid JSON, the menu needs the acl', () => {
	const menu = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/luci/menu.d/luci-app-awl.json'), 'utf8'));
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'));
	assert.deepEqual(menu['admin/vpn/awl'].depends.acl, ['luci-app-awl']);
	for (const p of Object.keys(menu).filter((k) => menu[k].action.type === 'view'))
		assert.ok(fs.existsSync(path.join(APP, 'htdocs/luci-static/resources/view', menu[p].action.path + '.js')), p);
	// One group, as LuCI apps have it: LuCI's dispatcher marks a login read-only for the app
	// when it holds the group's read side only.
	assert.deepEqual(Object.keys(acl), ['luci-app-awl']);
	assert.deepEqual(acl['luci-app-awl'].read.uci, ['awl']);
	assert.deepEqual(acl['luci-app-awl'].write.uci, ['awl']);
});

test('write methods are granted only on the write side of the ACL', () => {
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'))['luci-app-awl'];
	const WRITE = ['invite', 'accept', 'decline', 'remove', 'reload'];
	for (const m of WRITE) {
		assert.ok(!acl.read.ubus.awl.includes(m), `${m} must not be readable`);
		assert.ok(acl.write.ubus.awl.includes(m), `${m} missing from write`);
	}
	assert.deepEqual(acl.write.ubus.awl.slice().sort(), WRITE.slice().sort(), 'nothing else is on the write side');
});

test('the ACL\'s read and write sides are the daemon\'s read and write methods (awl rpcd methods)', { skip: RPCD !== true && RPCD }, () => {
	const methods = JSON.parse(execFileSync(AWL, ['rpcd', 'methods'], { encoding: 'utf8' })).filter((m) => m.rpcd);
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'))['luci-app-awl'];
	const names = (w) => methods.filter((m) => m.write === w).map((m) => m.name).sort();
	assert.deepEqual(acl.read.ubus.awl.slice().sort(), names(false), 'read side');
	assert.deepEqual(acl.write.ubus.awl.slice().sort(), names(true), 'write side');
});

test('every rpc method the views call is granted in acl.d', () => {
	const { rec, load } = sandbox();
	for (const v of VIEWS) load(`view/awl/${v}.js`);
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'));
	const granted = new Set();
	for (const g of Object.values(acl))
		for (const mode of ['read', 'write'])
			for (const m of ((g[mode] || {}).ubus || {}).awl || []) granted.add(m);
	const awlCalls = rec.declared.filter((d) => d.object === 'awl');
	assert.ok(awlCalls.length >= 9);
	for (const d of rec.declared) {
		if (d.object === 'session') { assert.equal(d.method, 'access'); continue; }
		assert.equal(d.object, 'awl');
		assert.ok(granted.has(d.method), `${d.method} not granted in acl.d`);
	}
});

test('every rpc method the views call is offered by the backend with the same parameters', { skip: RPCD !== true && RPCD }, () => {
	const { rec, load } = sandbox();
	for (const v of VIEWS) load(`view/awl/${v}.js`);
	const offered = JSON.parse(execFileSync('sh', [BACKEND, 'list'], { encoding: 'utf8', env: { ...process.env, AWL_BIN: AWL } }));
	for (const d of rec.declared.filter((x) => x.object === 'awl')) {
		assert.ok(d.method in offered, `${d.method} not offered by the backend`);
		for (const p of d.params) assert.ok(p in offered[d.method], `${d.method}.${p} not declared by the backend`);
	}
	const acl = JSON.parse(fs.readFileSync(path.join(APP, 'root/usr/share/rpcd/acl.d/luci-app-awl.json'), 'utf8'))['luci-app-awl'];
	for (const m of Object.keys(offered))
		assert.ok(acl.read.ubus.awl.includes(m) || acl.write.ubus.awl.includes(m), `backend method ${m} is in no ACL list`);
});

// Runs a real daemon (in its own network namespace when root, so its TUN stays there).
test('the rpcd backend answers from a running daemon, from declared parameters only', { skip: RPCD !== true && RPCD }, async (t) => {
	const { cfg, call, daemon, exited } = await startDaemon(t, AWL, 'luci-test');

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

	// The request is built from the method's declared parameters only: a 'cmd', rpcd's
	// ubus_rpc_session or any other key in the arguments changes nothing.
	const B = '12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ';
	const sneaky = call('status', { cmd: 'invite', peer_id: B, alias: 'evil', ubus_rpc_session: '0123456789abcdef0123456789abcdef' });
	assert.equal(sneaky.ok, true, JSON.stringify(sneaky));
	assert.match(sneaky.result.peer_id, /^12D3KooW/, 'still a status reply');
	const twice = call('remove', { peer_id: '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7', cmd: 'status' });
	assert.equal(twice.ok, true, JSON.stringify(twice));
	assert.equal(twice.result.peer_id, undefined, 'remove stayed remove');
	assert.ok(!call('peers', {}).result.some((p) => p.peer_id === B), 'status did not invite B');
	assert.doesNotMatch(fs.readFileSync(cfg, 'utf8'), /evil/);
	const typed = call('invite', { peer_id: 12345 });
	assert.equal(typed.ok, false, 'a number is not a peer ID string');

	daemon.kill('SIGTERM');
	await exited;
	const down = call('status', {});
	assert.equal(down.ok, false, 'a stopped daemon gives a JSON error, not garbage');
});
