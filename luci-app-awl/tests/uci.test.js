'use strict';
// Two writers of /etc/config/awl: LuCI stages edits (uci delta in rpcd's per-session savedir)
// while the daemon adds and removes whole peer sections. The model of uci (uci-model.js) must
// reproduce what the real uci CLI did (uci-vectors.json); then the race: a staged LuCI edit of
// peer A, a daemon-side removal of peer B, Save & Apply → A changed, B gone, C untouched.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const uci = require('./uci-model');
const { execFileSync } = require('node:child_process');
const { sandbox, RES } = require('./harness');

const V = JSON.parse(fs.readFileSync(path.join(__dirname, 'uci-vectors.json'), 'utf8'));
const trim = (s) => s.replace(/\n+$/, '');

const A = '12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7';
const B = '12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ';
const C = '12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza';

test('the uci model reproduces every vector recorded with the real uci', () => {
	assert.ok(V.vectors.length >= 8);
	for (const v of V.vectors) {
		assert.equal(uci.stage(v.loaded, v.commands.split(';').filter(Boolean)), v.delta, `${v.name}: staged delta`);
		assert.equal(trim(uci.commit(v.at_commit, v.delta)), trim(v.result), `${v.name}: committed file`);
	}
});

// The daemon's side, as the daemon does it: a peer section is named 'peer_<peer ID>', and a
// removal drops that whole section (with its lines) and leaves every other line as it was.
function peerSection(id, alias, ip) {
	return `config peer 'peer_${id}'\n\toption peer_id '${id}'\n\toption alias '${alias}'\n\toption ip '${ip}'\n`;
}
function daemonRemove(text, id) {
	const lines = text.split('\n');
	const out = [];
	let skip = false;
	for (const l of lines) {
		if (/^config /.test(l)) skip = l === `config peer 'peer_${id}'`;
		if (!skip) out.push(l);
	}
	return out.join('\n').replace(/\n\n\n+/g, '\n\n');
}

const FILE = `# awl: edited by hand and by the daemon
config awl 'main'
	option name 'home'

${peerSection(A, 'office', '10.66.0.2')}
${peerSection(B, 'laptop', '10.66.0.3')}
${peerSection(C, 'phone', '10.66.0.4')}`;

// LuCI's grid: which uci commands does an edit of peer A's row stage? The peers view's grid
// rows are the config's section names (LuCI's form addresses sections by name).
async function lucisEdit(text, peer, option, value) {
	const { rec, load } = sandbox();
	for (const s of uci.parse(text)) rec.uci[s.id] = Object.assign({ '.type': s.type }, s.options);
	const v = load('view/awl/peers.js');
	await v.render(await v.load());
	const grid = rec.maps[0].sections[0];
	const sid = grid.cfgsections().find((s) => rec.uci[s].peer_id === peer);
	assert.ok(grid.options.some((o) => o.name === option), `the grid edits ${option}`);
	return [`set awl.${sid}.${option}=${value}`];
}

test('race: staged LuCI edit of peer A + daemon removes peer B + apply → A changed, B gone', async () => {
	const staged = uci.stage(FILE, await lucisEdit(FILE, A, 'alias', 'office-router'));
	assert.equal(staged, `awl.peer_${A}.alias='office-router'`, 'the edit names the peer\'s section');
	const onDisk = daemonRemove(FILE, B);
	assert.ok(onDisk.includes('# awl: edited by hand'), 'the daemon keeps other lines');
	const after = uci.parse(uci.commit(onDisk, staged));
	const byPeer = Object.fromEntries(after.filter((s) => s.type === 'peer').map((s) => [s.options.peer_id, s.options]));
	assert.equal(byPeer[A].alias, 'office-router', 'A changed');
	assert.equal(byPeer[B], undefined, 'B gone');
	assert.equal(byPeer[C].alias, 'phone', 'C untouched');
	assert.equal(after.find((s) => s.id === 'main').options.name, 'home');
});

test('race with an edit of the removed peer itself: nothing lands on another peer', async () => {
	const staged = uci.stage(FILE, await lucisEdit(FILE, B, 'alias', 'gone'));
	const after = uci.parse(uci.commit(daemonRemove(FILE, B), staged));
	assert.deepEqual(after.filter((s) => s.type === 'peer').map((s) => [s.options.peer_id, s.options.alias]), [[A, 'office'], [C, 'phone']]);
});

test('why the names matter: with anonymous sections the same race edits the wrong peer', () => {
	const anon = FILE.replace(/config peer 'peer_\w+'/g, 'config peer');
	const staged = uci.stage(anon, ['set awl.@peer[1].alias=laptop-renamed']); // LuCI's row for B
	const after = uci.parse(uci.commit(anon.replace(/config peer\n\toption peer_id '12D3KooWRaw[^]*?\n\n/, ''), staged));
	const c = after.find((s) => s.options.peer_id === C);
	assert.equal(c.options.alias, 'laptop-renamed', 'the model shows the old bug: B\'s edit landed on C');
});

test('the views never address a peer section by position', () => {
	for (const f of ['awl.js', ...fs.readdirSync(path.join(RES, 'view/awl')).map((x) => `view/awl/${x}`)])
		assert.doesNotMatch(fs.readFileSync(path.join(RES, f), 'utf8'), /@peer\[/, f);
});

// The same race with the real daemon removing peer B through the rpcd backend.
const { awlBin, rpcdSupport, startDaemon } = require('./daemon');
const AWL = awlBin();
const RPCD = rpcdSupport(AWL);

test('race with the real daemon: LuCI stages an edit of A, the daemon removes B, commit', { skip: RPCD !== true && RPCD }, async (t) => {
	const peers = '\n# peers below: written by the daemon, edited in LuCI\n' +
		[peerSection(A, 'office', '10.66.0.2'), peerSection(B, 'laptop', '10.66.0.3'), peerSection(C, 'phone', '10.66.0.4')].join('\n');
	const { cfg, call } = await startDaemon(t, AWL, 'race', peers);
	assert.equal(call('status', {}).ok, true);
	const loaded = fs.readFileSync(cfg, 'utf8');
	const staged = uci.stage(loaded, await lucisEdit(loaded, A, 'alias', 'office-router'));

	const removed = call('remove', { peer_id: B });
	assert.equal(removed.ok, true, JSON.stringify(removed));
	const onDisk = fs.readFileSync(cfg, 'utf8');
	assert.ok(!onDisk.includes(B), 'the daemon removed B\'s section');
	assert.ok(onDisk.includes('# peers below: written by the daemon'), 'the daemon kept the other lines');

	const committed = uci.commit(onDisk, staged);
	const byPeer = Object.fromEntries(uci.parse(committed).filter((s) => s.type === 'peer').map((s) => [s.options.peer_id, s.options]));
	assert.equal(byPeer[A].alias, 'office-router', 'A changed');
	assert.equal(byPeer[B], undefined, 'B gone');
	assert.equal(byPeer[C].alias, 'phone', 'C untouched');
	fs.writeFileSync(cfg, committed);
	execFileSync(AWL, ['config', 'check', cfg], { encoding: 'utf8' });
	// rpcd's config.change → reload: the daemon takes LuCI's edit
	const reload = call('reload', {});
	assert.equal(reload.ok, true, JSON.stringify(reload));
	const live = call('peers', {}).result;
	assert.equal(live.find((p) => p.peer_id === A).alias, 'office-router');
	assert.ok(!live.some((p) => p.peer_id === B));
});
