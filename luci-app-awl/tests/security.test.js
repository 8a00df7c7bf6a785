'use strict';
// What strangers and read-only logins can do to the app: peer-chosen text (friend-request
// names, aliases, addresses, log lines, daemon errors) stays text under LuCI's real E()/dom
// semantics (a bare string child is HTML); a read-only login has no active write control; the
// views call only LuCI functions every supported release has.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { sandbox, injected, API, RES } = require('./harness');
const acl = require('./rpcd-acl');

const PEER = '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7';
const HOSTILE = '<img src=x onerror=alert(1)>';
const tick = () => new Promise((r) => setImmediate(r));

function hostileReplies(extra = {}) {
	return Object.assign({
		status: { ok: true, result: { peer_id: PEER, name: HOSTILE, mesh_ip: '10.66.0.1', prefix: 16, interface: 'awl0', listen_addrs: [HOSTILE], uptime_secs: 1, peers_known: 1, peers_connected: 0, traffic: {} } },
		peers: { ok: true, result: [{ peer_id: PEER, alias: HOSTILE, name: HOSTILE, domain: HOSTILE, ip: '10.66.0.2', connected: true, confirmed: true, path: HOSTILE, rtt_ms: 3, traffic: { rx_bytes: 1, tx_bytes: 2 }, last_seen: 0 }] },
		requests: { ok: true, result: [{ peer_id: PEER, name: HOSTILE, received_at: 0 }] },
		health: { ok: true, result: { ok: false, checks: [{ check: HOSTILE, ok: false, detail: HOSTILE }] } },
		logs: { ok: true, result: [`1700000000 WARN  awl::peers: friend request from ${HOSTILE}`] }
	}, extra);
}

test('a hostile friend-request name stays text: status, requests, Accept (alias passed on), peers table, errors', async () => {
	const { rec, load } = sandbox(hostileReplies({ accept: { ok: false, error: `cannot accept ${HOSTILE}` } }));
	const v = load('view/awl/status.js');
	const page = v.render(await v.load());
	assert.deepEqual(injected(page).map((n) => n.tag), [], 'no markup from peer text');
	assert.ok(page.textContent.includes(HOSTILE), 'the name is shown, as text');

	await page.button('Accept').click();
	await tick();
	assert.equal(rec.rpcCalls.find((c) => c.method === 'accept').params.alias, HOSTILE, 'the name is passed on as data');
	const err = rec.notifications.at(-1);
	assert.equal(err.kind, 'error');
	assert.ok(err.text.includes(HOSTILE));
	assert.deepEqual(injected(err.node).map((n) => n.tag), [], 'no markup from a daemon error');
});

test('hostile text in log lines and peer aliases stays text on the log and graphs pages', async () => {
	for (const name of ['logs', 'graphs']) {
		const { load } = sandbox(hostileReplies());
		const v = load(`view/awl/${name}.js`);
		const page = v.render(await v.load());
		assert.deepEqual(injected(page).map((n) => n.tag), [], name);
		assert.ok(page.textContent.includes(HOSTILE), `${name} shows the text`);
	}
});

test('the stand-in renders a bare string child as HTML, as LuCI does (so the test above can fail)', () => {
	const { load } = sandbox();
	const { E } = require('./harness');
	const bare = E('td', {}, HOSTILE);
	assert.equal(injected(bare)[0].tag, 'img');
	assert.deepEqual(injected(E('td', {}, [HOSTILE])), []);
	assert.equal(E('p', [null]).textContent, 'null', 'openwrt-23.05 turns a null array item into text');
	assert.ok(load);
});

test('the peers grid leaves cells to LuCI\'s escaped text values', async () => {
	const { rec, load } = sandbox();
	const v = load('view/awl/peers.js');
	await v.render(await v.load());
	for (const o of rec.maps[0].sections[0].options) {
		assert.notEqual(o.rawhtml, true, `${o.name} would render raw HTML`);
		assert.ok(!Object.prototype.hasOwnProperty.call(o, 'textvalue'), `${o.name} overrides the escaped textvalue`);
	}
});

test('titles and descriptions (rendered as HTML by LuCI) hold no markup', async () => {
	const { rec, load } = sandbox();
	for (const name of ['settings', 'peers']) {
		const v = load(`view/awl/${name}.js`);
		await v.render(await (v.load ? v.load() : null));
	}
	for (const m of rec.maps) {
		for (const t of [m.title, m.description]) assert.doesNotMatch(String(t || ''), /[<>]/);
		for (const s of m.sections)
			for (const o of s.options)
				for (const t of [o.title, o.description]) assert.doesNotMatch(String(t || ''), /[<>]/, `${o.name}: ${t}`);
	}
});

test('the stand-in refuses LuCI functions a supported release lacks', () => {
	const { load } = sandbox();
	const releases = Object.keys(API.releases);
	assert.ok(releases.length >= 3, 'three releases recorded');
	for (const r of Object.values(API.releases)) assert.match(r.commit, /^[0-9a-f]{40}$/);
	assert.ok(API.releases['openwrt-24.10'].modules.ui.includes('addTimeLimitedNotification'));
	assert.ok(!API.releases['openwrt-23.05'].modules.ui.includes('addTimeLimitedNotification'));
	const { modules } = sandbox();
	assert.throws(() => modules.ui.addTimeLimitedNotification, /addTimeLimitedNotification does not exist in LuCI openwrt-23\.05/);
	assert.throws(() => modules.L.hasAcl, /L\.hasAcl does not exist in LuCI/);
	assert.equal(typeof modules.ui.addNotification, 'function');
	assert.ok(load);
});

test('the views use only members of LuCI modules that every supported release has', () => {
	const files = ['awl.js', ...fs.readdirSync(path.join(RES, 'view/awl')).map((f) => `view/awl/${f}`)];
	for (const f of files) {
		const src = fs.readFileSync(path.join(RES, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
		const required = [...src.matchAll(/^'require ([\w.]+)';$/gm)].map((m) => m[1]).filter((m) => m in API.intersection);
		for (const mod of required.concat(['L']))
			for (const m of src.matchAll(new RegExp(`\\b${mod}\\.(\\w+)`, 'g')))
				// view is a class: view.extend is the baseclass static
				assert.ok(API.intersection[mod].includes(m[1]) || (mod === 'view' && API.intersection.baseclass.includes(m[1])), `${f}: ${mod}.${m[1]} is missing in some supported LuCI release`);
		for (const m of src.matchAll(/\bform\.(\w+)\.prototype\.(\w+)/g))
			assert.ok((API.intersection[`form.${m[1]}`] || []).includes(m[2]), `${f}: form.${m[1]}.prototype.${m[2]}`);
	}
});

test('a read-only login has no active write control', async () => {
	const WRITE = /^(Accept|Decline|Invite|Invite peer|Delete|Remove|Save|Save & Apply)$/;
	// status: Accept and Decline are disabled and do nothing
	const ro = sandbox(hostileReplies({ accept: { ok: true, result: {} }, decline: { ok: true, result: {} } }), { session: 'readonly' });
	const v = ro.load('view/awl/status.js');
	const page = v.render(await v.load());
	const writes = page.buttons().filter((b) => WRITE.test(b.textContent));
	assert.deepEqual(writes.map((b) => b.textContent), ['Accept', 'Decline']);
	for (const b of writes) { assert.equal(b.disabled, true, `${b.textContent} is active`); await b.click(); }
	await tick();
	assert.deepEqual(ro.rec.rpcCalls.filter((c) => /accept|decline/.test(c.method)), []);
	assert.deepEqual(ro.rec.denied, []);

	// peers: the map is read-only (LuCI then disables the grid, Add and Delete), invite and remove do nothing
	const pv = ro.load('view/awl/peers.js');
	await pv.render(await pv.load());
	const grid = ro.rec.maps.at(-1);
	assert.equal(grid.readonly, true);
	await grid.sections[0].handleAdd();
	assert.equal(ro.rec.modals.length, 0, 'no invite dialog');
	ro.rec.uci[`peer_${PEER}`] = { '.type': 'peer', peer_id: PEER };
	await grid.sections[0].handleRemove(`peer_${PEER}`);
	assert.ok(!ro.rec.rpcCalls.some((c) => c.method === 'remove'));

	// settings: LuCI's Map.load finds no uci write access and makes the form read-only (and
	// view.addFooter disables Save & Apply when every map is read-only)
	const sv = ro.load('view/awl/settings.js');
	await sv.render();
	assert.equal(ro.rec.maps.at(-1).readonly, true);

	// the same pages for a full login are writable
	const rw = sandbox(hostileReplies({ accept: { ok: true, result: {} } }));
	const v2 = rw.load('view/awl/status.js');
	const page2 = v2.render(await v2.load());
	assert.equal(page2.button('Accept').disabled, false);
	const sv2 = rw.load('view/awl/settings.js');
	await sv2.render();
	assert.notEqual(rw.rec.maps.at(-1).readonly, true);
});

test('rpcd (as session.c grants it) lets a read-only login call no write method', () => {
	const ro = acl.grants(acl.LOGINS.readonly);
	const root = acl.grants(acl.LOGINS.root);
	for (const m of ['status', 'peers', 'requests', 'blocked', 'health', 'logs']) assert.ok(acl.allowed(ro, 'ubus', 'awl', m), m);
	for (const m of ['invite', 'accept', 'decline', 'remove', 'reload']) {
		assert.ok(!acl.allowed(ro, 'ubus', 'awl', m), `read-only may call ${m}`);
		assert.ok(acl.allowed(root, 'ubus', 'awl', m), `root may not call ${m}`);
	}
	assert.ok(acl.allowed(ro, 'uci', 'awl', 'read') && !acl.allowed(ro, 'uci', 'awl', 'write'));
	assert.ok(ro.has('access-group luci-app-awl read') && !ro.has('access-group luci-app-awl write'));
	// rpcd's rules themselves: '!' patterns deny first, write implies read
	assert.equal(acl.testPermission({ read: ['!luci-app-awl', '*'] }, 'read', 'luci-app-awl'), false);
	assert.equal(acl.testPermission({ write: ['luci-app-*'] }, 'read', 'luci-app-awl'), true);
	// and the stand-in enforces it: a read-only session's direct call is refused
	const sb = sandbox({ invite: { ok: true, result: {} } }, { session: 'readonly' });
	const awl = sb.load('awl.js');
	return awl.call('invite', PEER).then(() => assert.fail('invite went through'), (e) => {
		assert.match(e.message, /Access denied/);
		assert.deepEqual(sb.rec.denied, ['awl.invite']);
	});
});
