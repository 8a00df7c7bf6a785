'use strict';
// Renders each view in headless Chromium with the browser stand-in and fixture data (status
// with two live peers and a friend request, peers, settings) and saves screenshots to
// target/luci-screenshots/ for a person to look at. Skipped when Chromium is not installed.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const APP = path.join(__dirname, '..');
const RES = path.join(APP, 'htdocs/luci-static/resources');
const OUT = path.join(APP, '..', 'target', 'luci-screenshots');
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
		requests: { ok: true, result: [{ peer_id: '12D3KooWFdFV4ZcwMhNQuQnzNCp1K1aaQAsAnr8sXJnj7vehtCFW', name: 'grandma-pc', received_at: now - 60 }] }
	},
	uci: {
		main: { '.type': 'awl', enabled: '1', name: 'home-router', listen_port: '4363', address: '10.66.0.1/16', mtu: '1420', route: ['192.168.1.0/24'], log_level: 'info' },
		cfg01: { '.type': 'peer', alias: 'office-router', peer_id: A, ip: '10.66.0.2', allow_lan: '1' },
		cfg02: { '.type': 'peer', alias: 'laptop', peer_id: B, ip: '10.66.0.3', allow_exit: '1' },
		cfg03: { '.type': 'peer', alias: 'phone', peer_id: C, ip: '10.66.0.4' }
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

function page(view) {
	const sources = {};
	sources.awl = fs.readFileSync(path.join(RES, 'awl.js'), 'utf8');
	for (const v of ['status', 'peers', 'settings']) sources[`view.awl.${v}`] = fs.readFileSync(path.join(RES, `view/awl/${v}.js`), 'utf8');
	const fixtures = Object.assign({}, FIXTURES, { sources });
	return `<!DOCTYPE html><html><head><meta charset="utf-8"><style>${CSS}</style></head><body>
<header>OpenWrt · VPN · Awl</header><div id="maincontent"></div>
<script>window.FIXTURES = ${JSON.stringify(fixtures)};</script>
<script>${fs.readFileSync(path.join(__dirname, 'browser-runtime.js'), 'utf8')}</script>
<script>renderView(${JSON.stringify(view)}).catch(function(e){document.body.textContent='ERROR '+e.stack;document.title='error';});</script>
</body></html>`;
}

for (const v of ['status', 'peers', 'settings']) {
	test(`chromium renders the ${v} view`, { skip: !CHROMIUM && 'chromium not installed (apt-get install chromium)' }, () => {
		fs.mkdirSync(OUT, { recursive: true });
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'awl-shot-'));
		const html = path.join(dir, `${v}.html`);
		fs.writeFileSync(html, page(`view.awl.${v}`));
		const png = path.join(OUT, `${v}.png`);
		fs.rmSync(png, { force: true });
		const common = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'profile')}`];
		const dump = spawnSync(CHROMIUM, [...common, '--virtual-time-budget=3000', '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 60000 });
		const failed = /<title>error<\/title>[\s\S]*<body>([\s\S]{0,800})/.exec(dump.stdout);
		assert.ok(!failed, failed && failed[1]);
		assert.match(dump.stdout, /<title>rendered<\/title>/, 'the view rendered');
		const expect = { status: ['office-router', 'grandma-pc', 'relayed'], peers: ['Invite peer', 'office-router'], settings: ['Exported LAN routes', 'Bootstrap peers'] }[v];
		for (const text of expect) assert.ok(dump.stdout.includes(text), `${v}: '${text}' not in the page`);
		spawnSync(CHROMIUM, [...common, '--virtual-time-budget=3000', `--screenshot=${png}`, '--window-size=1280,900', `file://${html}`], { timeout: 60000 });
		assert.ok(fs.existsSync(png) && fs.statSync(png).size > 10000, `screenshot ${png} missing`);
		console.log(`screenshot: ${png}`);
		fs.rmSync(dir, { recursive: true, force: true });
	});
}
