'use strict';
// Renders each view in headless Chromium with the browser stand-in and fixture data (status
// with two live peers and a friend request, peers, graphs, settings, log) and saves screenshots
// to target/luci-screenshots/ (or $AWL_SCREENSHOTS, e.g. docs/screenshots) for a person to look
// at. Also renders hostile peer text in a real browser: no markup may come of it. Skipped when
// Chromium is not installed.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const APP = path.join(__dirname, '..');
const RES = path.join(APP, 'htdocs/luci-static/resources');
const OUT = process.env.AWL_SCREENSHOTS ? path.resolve(process.env.AWL_SCREENSHOTS) : path.join(APP, '..', 'target', 'luci-screenshots');
const API = JSON.parse(fs.readFileSync(path.join(__dirname, 'luci-api.json'), 'utf8')).intersection;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));

const A = '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7';
const B = '12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ';
const C = '12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza';
const now = Math.floor(Date.now() / 1000);
const FIXTURES = {
	rpc: {
		status: { ok: true, result: { peer_id: '12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV', name: 'home-router', mesh_ip: '10.66.0.1', prefix: 16, interface: 'awl0', listen_addrs: ['/ip4/192.168.1.1/udp/4363/quic-v1', '/ip4/203.0.113.7/udp/4363/quic-v1'], uptime_secs: 93784, peers_known: 3, peers_connected: 2, traffic: { rx_bytes: 734003200, tx_bytes: 91226112 } } },
		peers: { ok: true, result: [
			{ peer_id: A, alias: 'office-router', ip: '10.66.0.2', connected: true, confirmed: true, path: 'direct', rtt_ms: 12.4, traffic: { rx_bytes: 524288000, tx_bytes: 73400320 }, last_seen: now },
			{ peer_id: B, alias: 'laptop', ip: '10.66.0.3', connected: true, confirmed: true, path: 'relayed', rtt_ms: 48.9, traffic: { rx_bytes: 209715200, tx_bytes: 17825792 }, last_seen: now },
			{ peer_id: C, alias: 'phone', ip: '10.66.0.4', connected: false, confirmed: true, path: null, rtt_ms: null, traffic: { rx_bytes: 0, tx_bytes: 0 }, last_seen: now - 7200 }
		] },
		requests: { ok: true, result: [{ peer_id: '12D3KooWFdFV4ZcwMhNQuQnzNCp1K1aaQAsAnr8sXJnj7vehtCFW', name: 'grandma-pc', received_at: now - 60 }] },
		health: { ok: true, result: { ok: false, checks: [
			{ check: 'interface', ok: true, detail: 'awl0 up' },
			{ check: 'bootstrap', ok: false, detail: '0 bootstrap peer(s) connected' },
			{ check: 'peers', ok: true, detail: '2 of 3 confirmed peer(s) connected' }
		] } },
		logs: { ok: true, result: [
			`${now - 300} INFO  awl: awl 0.1.0 starting, peer ID 12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV`,
			`${now - 299} INFO  awl::tun: awl0 up, 10.66.0.1/16, mtu 1420`,
			`${now - 298} WARN  awl::discovery: bootstrap /dnsaddr/bootstrap.example: no answer, retrying in 20 s`,
			`${now - 240} INFO  awl::peers: office-router connected (direct, 12.4 ms)`,
			`${now - 200} INFO  awl::peers: laptop connected (relayed)`,
			`${now - 120} DEBUG awl::dcutr: hole punch to laptop: 3 candidates`,
			`${now - 60} INFO  awl::peers: friend request from grandma-pc`,
			`${now - 5} ERROR awl::dns: upstream 127.0.0.1:53 refused`
		] }
	},
	uci: {
		main: { '.type': 'awl', enabled: '1', name: 'home-router', listen_port: '4363', address: '10.66.0.1/16', mtu: '1420', route: ['192.168.1.0/24'], log_level: 'info' },
		[`peer_${A}`]: { '.type': 'peer', alias: 'office-router', peer_id: A, ip: '10.66.0.2', allow_lan: '1' },
		[`peer_${B}`]: { '.type': 'peer', alias: 'laptop', peer_id: B, ip: '10.66.0.3', allow_exit: '1' },
		[`peer_${C}`]: { '.type': 'peer', alias: 'phone', peer_id: C, ip: '10.66.0.4' }
	},
	sources: {}
};

const CSS = `body{font-family:sans-serif;background:#f5f5f5;margin:0}header{background:#002b49;color:#fff;padding:10px 20px;font-size:18px}
#maincontent{margin:16px 24px;background:#fff;padding:12px 20px;border-radius:4px}h2{margin-top:4px}h3{border-bottom:1px solid #ddd}
.table{border-collapse:collapse;width:100%}.th,.td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;font-size:13px}
.table-titles .th{background:#f0f0f0}.cbi-button{padding:3px 10px;border:1px solid #999;border-radius:3px;background:#eee;cursor:pointer}
.cbi-button-positive{background:#5cb85c;color:#fff}.cbi-button-negative{background:#d9534f;color:#fff}.cbi-button-add{margin-top:8px;background:#337ab7;color:#fff}
.cbi-value{display:flex;margin:6px 0}.cbi-value-title{width:220px;font-weight:bold;font-size:13px}.cbi-value-description{color:#777;font-size:12px}
fieldset{border:1px solid #ddd;margin:10px 0}legend{font-weight:bold}.awl-up{color:#2a7d2a;font-weight:bold}.awl-down{color:#999}
.alert-message{background:#fcf8e3;padding:8px}.dynlist .item{font-family:monospace}code{font-size:12px}`;

// Counters of two busy peers, one reply per poll: the graphs page draws five minutes of them.
function peersSequence(n) {
	const out = [];
	let a = [524288000, 73400320], b = [209715200, 17825792];
	for (let i = 0; i < n; i++) {
		a = [a[0] + 3 * (400000 + 250000 * Math.sin(i / 6)), a[1] + 3 * (40000 + 20000 * Math.cos(i / 9))];
		b = [b[0] + 3 * (90000 + 80000 * Math.max(0, Math.sin(i / 4))), b[1] + 3 * 15000];
		const r = JSON.parse(JSON.stringify(FIXTURES.rpc.peers));
		r.result[0].traffic = { rx_bytes: a[0], tx_bytes: a[1] };
		r.result[0].rtt_ms = 12 + 4 * Math.sin(i / 3);
		r.result[1].traffic = { rx_bytes: b[0], tx_bytes: b[1] };
		r.result[1].rtt_ms = 45 + 10 * Math.cos(i / 5);
		out.push(r);
	}
	return out;
}

function page(view, extra = {}) {
	const sources = {};
	sources.awl = fs.readFileSync(path.join(RES, 'awl.js'), 'utf8');
	for (const v of VIEWS) sources[`view.awl.${v}`] = fs.readFileSync(path.join(RES, `view/awl/${v}.js`), 'utf8');
	const fixtures = Object.assign({}, FIXTURES, { sources, api: API }, extra);
	return `<!DOCTYPE html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body>
<header>OpenWrt · VPN · Awl</header><div id="maincontent"></div>
<script>window.FIXTURES = ${JSON.stringify(fixtures)};</script>
<script>${fs.readFileSync(path.join(__dirname, 'browser-runtime.js'), 'utf8')}</script>
<script>renderView(${JSON.stringify(view)}).catch(function(e){document.body.textContent='ERROR '+e.stack;document.title='error';});</script>
</body></html>`;
}

const VIEWS = ['status', 'peers', 'graphs', 'settings', 'logs'];
const COMMON = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Renders a view; returns the DOM Chromium ended with (and saves a screenshot when png is given).
function chromium(view, { extra = {}, png = null, budget = 3000, height = 900 } = {}) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'awl-shot-'));
	const html = path.join(dir, 'page.html');
	fs.writeFileSync(html, page(`view.awl.${view}`, extra));
	const args = [...COMMON, `--user-data-dir=${path.join(dir, 'profile')}`, `--virtual-time-budget=${budget}`];
	const dump = spawnSync(CHROMIUM, [...args, '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 120000 });
	if (png) spawnSync(CHROMIUM, [...args, `--screenshot=${png}`, `--window-size=1280,${height}`, `file://${html}`], { timeout: 120000 });
	fs.rmSync(dir, { recursive: true, force: true });
	const failed = /<title>error<\/title>[\s\S]*<body>([\s\S]{0,800})/.exec(dump.stdout);
	assert.ok(!failed, failed && failed[1]);
	assert.match(dump.stdout, /<title>rendered<\/title>/, 'the view rendered');
	return dump.stdout;
}

const SKIP = !CHROMIUM && 'chromium not installed (apt-get install chromium)';
const EXPECT = {
	status: ['office-router', 'grandma-pc', 'relayed', 'No bootstrap peer is reachable'],
	peers: ['Invite peer', 'office-router'],
	graphs: ['office-router', 'laptop', 'Mbit/s', 'class="awl-rx"'],
	settings: ['Exported LAN routes', 'Bootstrap peers'],
	logs: ['friend request from grandma-pc', 'upstream 127.0.0.1:53 refused']
};
for (const v of VIEWS) {
	test(`chromium renders the ${v} view`, { skip: SKIP }, () => {
		fs.mkdirSync(OUT, { recursive: true });
		const png = path.join(OUT, process.env.AWL_SCREENSHOTS ? `luci-${v}.png` : `${v}.png`);
		fs.rmSync(png, { force: true });
		const extra = v === 'graphs' ? { rpc: Object.assign({}, FIXTURES.rpc, { peers: { sequence: peersSequence(200) } }) } : {};
		const dom = chromium(v, { extra, png, budget: v === 'graphs' ? 330000 : 3000, height: { settings: 1600, graphs: 1000 }[v] || 900 });
		for (const text of EXPECT[v]) assert.ok(dom.includes(text), `${v}: '${text}' not in the page`);
		if (v === 'graphs') {
			const d = /class="awl-rx" d="([^"]*)"/.exec(dom)[1];
			assert.ok(d.split('L').length > 50, 'five minutes of samples drawn');
		}
		assert.ok(fs.existsSync(png) && fs.statSync(png).size > 10000, `screenshot ${png} missing`);
		console.log(`screenshot: ${png}`);
	});
}

// A real browser parses a bare string child as HTML: the hostile name must stay text.
test('chromium: hostile peer text on status, peers, graphs and log pages runs no markup', { skip: SKIP }, () => {
	const EVIL = '<img src=x onerror="document.documentElement.setAttribute(\'data-xss\',\'1\')">';
	const hostile = JSON.parse(JSON.stringify(FIXTURES.rpc).replace(/grandma-pc|office-router|laptop/g, '@@'));
	const text = JSON.stringify(hostile).replace(/@@/g, JSON.stringify(EVIL).slice(1, -1));
	const rpc = JSON.parse(text);
	const uci = JSON.parse(JSON.stringify(FIXTURES.uci).replace(/office-router/g, JSON.stringify(EVIL).slice(1, -1)));
	for (const v of ['status', 'peers', 'graphs', 'logs']) {
		const dom = chromium(v, { extra: { rpc, uci } });
		assert.ok(!/<html[^>]*data-xss/.test(dom), `${v}: peer text became markup (its onerror ran)`);
		assert.ok(!/<img src="x"/.test(dom.replace(/<script>[\s\S]*?<\/script>/g, '')), `${v}: peer text became an element`);
		assert.ok(dom.includes('&lt;img src=x'), `${v}: the text is shown`);
	}
});

test('chromium: a read-only login sees Accept, Invite, Delete and Save disabled', { skip: SKIP }, () => {
	const status = chromium('status', { extra: { writable: false } });
	for (const b of ['Accept', 'Decline']) assert.match(status, new RegExp(`<button[^>]*disabled[^>]*>${b}</button>`), b);
	const peers = chromium('peers', { extra: { writable: false } });
	for (const b of ['Invite peer', 'Delete']) assert.match(peers, new RegExp(`<button[^>]*disabled[^>]*>${b}</button>`), b);
	const settings = chromium('settings', { extra: { writable: false } });
	assert.match(settings, /<button[^>]*disabled[^>]*>Save &amp; Apply<\/button>/);
});

// The same pages fed by a real daemon: its replies through the rpcd backend, as LuCI gets them.
const { awlBin, rpcdSupport, startDaemon } = require('./daemon');
const AWL = CHROMIUM ? awlBin() : null;
const RPCD = AWL ? rpcdSupport(AWL) : 'chromium not installed';

test('chromium renders status, graphs and log from a real daemon behind the rpcd backend', { skip: SKIP || (RPCD !== true && RPCD) }, async (t) => {
	const { call } = await startDaemon(t, AWL, 'shot');
	assert.equal(call('invite', { peer_id: A, alias: 'office-router' }).ok, true);
	const rpc = {};
	for (const m of ['status', 'peers', 'requests', 'health']) rpc[m] = call(m, {});
	rpc.logs = call('logs', { lines: 500 });
	for (const m of Object.keys(rpc)) assert.equal(rpc[m].ok, true, `${m}: ${JSON.stringify(rpc[m])}`);
	assert.ok(rpc.logs.result.length > 0, 'the daemon logged something');
	const id = rpc.status.result.peer_id;
	const expect = {
		status: [id, 'office-router', 'invited'],
		graphs: ['office-router', 'class="awl-rx"'],
		logs: [rpc.logs.result.at(-1).replace(/^\d+\s+/, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').slice(0, 40)]
	};
	fs.mkdirSync(OUT, { recursive: true });
	for (const v of Object.keys(expect)) {
		const png = path.join(OUT, `luci-daemon-${v}.png`);
		const dom = chromium(v, { extra: { rpc }, png, height: 700 });
		for (const text of expect[v]) assert.ok(dom.includes(text), `${v}: '${text}' not in the page`);
		assert.ok(fs.existsSync(png), png);
	}
});
