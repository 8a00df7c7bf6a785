'use strict';
// View tests in node:vm with LuCI stand-ins: declared options and datatypes, the rpc calls
// buttons make, and that error replies are shown.
const test = require('node:test');
const assert = require('node:assert/strict');
const { sandbox } = require('./harness');

const PEER = '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7';
const STATUS = {
	ok: true,
	result: {
		peer_id: PEER, name: 'router', mesh_ip: '10.66.0.1', prefix: 16, interface: 'awl0',
		listen_addrs: ['/ip4/192.0.2.1/udp/4363/quic-v1'], uptime_secs: 90, peers_known: 1,
		peers_connected: 1, traffic: { rx_bytes: 2048, tx_bytes: 1024 },
		bootstrap_connected: 2, circuit_addrs: ['/ip4/198.51.100.1/udp/6150/quic-v1/p2p/' + PEER + '/p2p-circuit'],
		relays: [{ peer_id: PEER, expires: 0 }], serving: false
	}
};
const PEERS = { ok: true, result: [{ peer_id: PEER, alias: 'office', ip: '10.66.0.2', connected: true, confirmed: true, path: 'direct', rtt_ms: 1.5, traffic: { rx_bytes: 1, tx_bytes: 2 }, last_seen: 0 }] };
const REQUESTS = { ok: true, result: [{ peer_id: PEER, name: 'laptop', received_at: 0 }] };
const tick = () => new Promise((r) => setImmediate(r));

function options(rec, kind) {
	const out = {};
	for (const m of rec.maps)
		for (const s of m.sections)
			if (!kind || s.kind === kind)
				for (const o of s.options) out[o.name] = o;
	return out;
}

test('settings declares the main options with the daemon\'s datatypes', () => {
	const { rec, load } = sandbox();
	const v = load('view/awl/settings.js');
	v.render();
	const s = rec.maps[0].sections[0];
	assert.equal(rec.maps[0].config, 'awl');
	assert.equal(s.kind, 'NamedSection');
	assert.equal(s.type, 'main');
	assert.deepEqual(s.tabs, ['general', 'network', 'advanced']);
	const o = options(rec);
	assert.equal(o.enabled.kind, 'Flag');
	assert.equal(o.mtu.datatype, 'range(576,9000)');
	assert.equal(o.listen_port.datatype, 'range(0,65535)');
	assert.equal(o.address.datatype, 'cidr4');
	assert.equal(o.route.kind, 'DynamicList');
	assert.equal(o.route.datatype, 'cidr4');
	assert.deepEqual(o.log_level.choices, ['error', 'warn', 'info', 'debug', 'trace']);
	for (const name of ['name', 'interface', 'bootstrap', 'use_default_bootstrap', 'auto_accept', 'gateway', 'exit_node'])
		assert.ok(o[name], `settings lacks ${name}`);
	assert.equal(o.name.tab, 'general');
	assert.equal(o.bootstrap.tab, 'advanced');
	for (const name of ['use_relays', 'hole_punching', 'datagrams', 'serve'])
		assert.equal(o[name].kind, 'Flag', `${name} is a switch`);
	assert.deepEqual(o.relay_for.choices, ['friends', 'all']);
	assert.deepEqual(o.relay_for.deps, [['serve', '1']], 'relay options only when serving');
	assert.equal(o.service_address.datatype, 'ip4addr');
	assert.equal(o.socks5_port.datatype, 'range(1,65535)');
	assert.deepEqual(o.socks5_exit.deps, [['socks5', '1']]);
});

test('peers grid lists peer options and validates peer IDs', async () => {
	const { rec, load } = sandbox();
	const v = load('view/awl/peers.js');
	await v.render(await v.load());
	const s = rec.maps[0].sections[0];
	assert.equal(s.kind, 'GridSection');
	assert.equal(s.type, 'peer');
	const o = options(rec);
	assert.equal(o.allow_exit.kind, 'Flag');
	assert.equal(o.ip.datatype, 'ip4addr("nomask")');
	assert.equal(o.peer_id.validate('x', PEER), true);
	assert.notEqual(o.peer_id.validate('x', '12D3KooWbad'), true);
});

test('invite validates the peer ID, calls invite, and shows errors', async () => {
	let reply = { ok: true, result: { peer_id: PEER, alias: 'office', ip: '10.66.0.2' } };
	const { rec, load } = sandbox({ invite: () => reply });
	const v = load('view/awl/peers.js');
	await v.render(await v.load());
	const s = rec.maps[0].sections[0];

	s.handleAdd();
	let modal = rec.modals.at(-1).node;
	modal.byId('awl-invite-id').value = 'not-a-peer';
	await modal.byId('awl-invite-send').click();
	assert.equal(rec.rpcCalls.length, 0, 'invalid ID must not reach the daemon');

	modal.byId('awl-invite-id').value = PEER;
	modal.byId('awl-invite-alias').value = 'office';
	modal.byId('awl-invite-address').value = '/ip4/192.0.2.7/udp/4363/quic-v1';
	await modal.byId('awl-invite-send').click();
	await tick();
	assert.deepEqual(rec.rpcCalls.at(-1), { object: 'awl', method: 'invite', params: { peer_id: PEER, alias: 'office', ip: '', address: '/ip4/192.0.2.7/udp/4363/quic-v1' } });
	assert.ok(rec.notifications.some((n) => n.text.includes('Invited office')));
	assert.ok(rec.timers.some((t) => t.t === 5000), 'the notification goes away by itself');

	reply = { ok: false, error: 'peer table is full (max_peers)' };
	s.handleAdd();
	modal = rec.modals.at(-1).node;
	modal.byId('awl-invite-id').value = PEER;
	await modal.byId('awl-invite-send').click();
	await tick();
	assert.ok(rec.notifications.some((n) => n.kind === 'error' && n.text.includes('peer table is full')), JSON.stringify(rec.notifications));
});

test('remove asks first and goes through the daemon', async () => {
	const { rec, load } = sandbox({ remove: { ok: true, result: {} } });
	const v = load('view/awl/peers.js');
	await v.render(await v.load());
	const sid = `peer_${PEER}`;
	rec.uci[sid] = { '.type': 'peer', peer_id: PEER, alias: 'office' };
	const s = rec.maps[0].sections[0];
	rec.confirm = false;
	await s.handleRemove(sid);
	assert.equal(rec.rpcCalls.length, 0);
	rec.confirm = true;
	const before = rec.reloads;
	await s.handleRemove(sid);
	await tick();
	assert.deepEqual(rec.rpcCalls.at(-1), { object: 'awl', method: 'remove', params: { peer_id: PEER } });
	assert.ok(rec.reloads > before, 'the grid reloads after removal');
});

test('status shows node, peers and requests; accept and decline call the daemon', async () => {
	let acceptReply = { ok: true, result: { peer_id: PEER, alias: 'laptop', ip: '10.66.0.3' } };
	const { rec, load } = sandbox({ status: STATUS, peers: PEERS, requests: REQUESTS, accept: () => acceptReply, decline: { ok: false, error: 'no pending request' } });
	const v = load('view/awl/status.js');
	const data = await v.load();
	const page = v.render(data);
	assert.ok(page.textContent.includes(PEER), 'peer ID shown');
	assert.ok(page.textContent.includes('10.66.0.1/16'));
	assert.ok(page.textContent.includes('office') && page.textContent.includes('direct') && page.textContent.includes('1.5 ms'));
	assert.ok(page.textContent.includes('2 bootstrap peer(s) connected') && page.textContent.includes('reachable through 1 relay(s)'), 'reachability shown');
	assert.equal(rec.polls.length, 1, 'live refresh registered');
	assert.ok(page.button('Copy'), 'copy button');

	await page.button('Accept').click();
	await tick();
	assert.deepEqual(rec.rpcCalls.find((c) => c.method === 'accept').params, { peer_id: PEER, alias: 'laptop' });

	await page.button('Decline').click();
	await tick();
	assert.ok(rec.notifications.some((n) => n.kind === 'error' && n.text.includes('no pending request')), 'decline error shown');

	acceptReply = { ok: false, error: 'no free address left in the mesh subnet' };
	await page.button('Accept').click();
	await tick();
	assert.ok(rec.notifications.some((n) => n.text.includes('no free address')), 'accept error shown');
});

test('status says so when the daemon is down', async () => {
	const { load } = sandbox({ status: { ok: false, error: 'cannot reach the daemon' }, peers: { ok: false }, requests: { ok: false } });
	const v = load('view/awl/status.js');
	const page = v.render(await v.load());
	assert.ok(page.textContent.includes('not answering: cannot reach the daemon'));
});

test('graphs: rates from the daemon\'s byte counters between polls, RTT, one SVG per peer', async () => {
	let rx = 1000, tx = 500, rtt = 12.5;
	const peers = () => ({ ok: true, result: [{ peer_id: PEER, alias: 'office', connected: true, rtt_ms: rtt, traffic: { rx_bytes: rx, tx_bytes: tx } }] });
	const { rec, load } = sandbox({ peers });
	const v = load('view/awl/graphs.js');
	const t0 = 1_000_000;
	v.sample((await v.load()), t0);
	rx += 3 * 125000; tx += 3 * 12500; rtt = 20;          // 1 Mbit/s in, 100 kbit/s out for 3 s
	v.sample((await v.load()), t0 + 3000);
	const h = v.history[PEER];
	assert.deepEqual([h.rx[0], h.tx[0], h.rtt[0]], [125000, 12500, 20]);
	const page = v.render([]);
	assert.equal(rec.polls.length, 1);
	const graph = page.find((n) => n.attrs['data-peer'] === PEER);
	assert.ok(graph, 'a graph for the peer');
	assert.ok(graph.find((n) => n.tag === 'svg'));
	assert.match(graph.find((n) => n.attrs.class === 'awl-rx').attrs.d, /^M[\d.]+,[\d.]+/);
	assert.ok(page.textContent.includes('1.0 Mbit/s') && page.textContent.includes('100.0 kbit/s') && page.textContent.includes('20.0 ms'), page.textContent);
	// a counter reset (daemon restart) gives no negative rate
	rx = 0;
	v.sample((await v.load()), t0 + 6000);
	assert.equal(h.rx.at(-1), 0);
});

test('log: the daemon\'s lines, filtered by level', async () => {
	const lines = ['1700000000 ERROR awl::node: bind failed', '1700000001 WARN  awl::peers: slow', '1700000002 INFO  awl: started', '1700000003 DEBUG awl::p2p: dial'];
	const { rec, load } = sandbox({ logs: { ok: true, result: lines } });
	const v = load('view/awl/logs.js');
	const page = v.render(await v.load());
	assert.deepEqual(rec.rpcCalls.at(-1).params, { lines: 500 });
	const text = page.byId('awl-log').textContent;
	assert.ok(text.includes('bind failed') && text.includes('started') && !text.includes('dial'), text);
	assert.ok(text.includes('2023-11-14 22:13:20 ERROR'), 'times shown as dates');
	v.level = 'error';
	assert.ok(!v.renderLines(lines).textContent.includes('slow'));
	v.level = 'debug';
	assert.ok(v.renderLines(lines).textContent.includes('dial'));
	const down = sandbox({ logs: { ok: false, error: 'cannot reach the daemon' } });
	const v2 = down.load('view/awl/logs.js');
	assert.ok(v2.render(await v2.load()).textContent.includes('not answering: cannot reach the daemon'));
});
