'use strict';
// Runs a real awl daemon for a test (in its own network namespace when root, so its TUN stays
// there) and calls it through the rpcd backend script, as rpcd would.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn, spawnSync } = require('node:child_process');

const APP = path.join(__dirname, '..');
const REPO = path.join(APP, '..');
const BACKEND = path.join(APP, 'root/usr/libexec/rpcd/awl');

function awlBin() {
	if (process.env.AWL_BIN) return process.env.AWL_BIN;
	execFileSync('cargo', ['build', '--quiet', '--bin', 'awl'], { cwd: REPO, stdio: 'inherit' });
	return path.join(REPO, 'target/debug/awl');
}

// true, or why the backend (`awl rpcd …`) cannot be tested with this binary.
function rpcdSupport(awl) {
	const r = spawnSync(awl, ['rpcd', 'list'], { encoding: 'utf8' });
	return r.status === 0 && /^\s*\{/.test(r.stdout) ? true : `'${awl} rpcd list' is not supported by this awl binary (needs the daemon's rpcd command)`;
}

// Starts the daemon on `extra` config text appended to a test main section.
async function startDaemon(t, awl, name, extra = '') {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'awl-luci-'));
	const cfg = path.join(dir, 'awl.uci');
	fs.writeFileSync(cfg, [
		"config awl 'main'", `\toption name '${name}'`, "\toption listen_port '0'",
		"\toption use_default_bootstrap '0'", `\toption data_dir '${dir}'`,
		`\toption control_socket '${dir}/awl.sock'`, `\toption interface 'awl${process.pid % 10000}'`, ''
	].join('\n') + extra);
	const root = process.getuid && process.getuid() === 0;
	const ns = `awl-luci-${process.pid}-${name}`;
	let cmd = [awl, '-c', cfg, 'run'];
	if (root && spawnSync('ip', ['netns', 'add', ns]).status === 0) cmd = ['ip', 'netns', 'exec', ns, ...cmd];
	const daemon = spawn(cmd[0], cmd.slice(1), { stdio: 'ignore' });
	const exited = new Promise((r) => daemon.on('exit', r));
	t.after(async () => {
		daemon.kill('SIGTERM');
		await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
		spawnSync('ip', ['netns', 'del', ns]);
		fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
	});
	const env = { ...process.env, AWL_BIN: awl, AWL_CONFIG: cfg };
	const call = (method, args) => JSON.parse(execFileSync('sh', [BACKEND, 'call', method], { input: JSON.stringify(args), env, encoding: 'utf8' }));
	for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'awl.sock')); i++) await new Promise((r) => setTimeout(r, 100));
	return { dir, cfg, daemon, call, exited };
}

module.exports = { awlBin, rpcdSupport, startDaemon, BACKEND };
