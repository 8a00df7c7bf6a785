'use strict';
// rpcd's ACL model, as openwrt/rpcd's session.c builds a session at login
// (rpc_login_setup_acl_file, rpc_login_test_permission, rpc_login_setup_acl_scope), recorded
// here because CI has no rpcd:
// - the login's `list read` / `list write` entries (rpcd config) are fnmatch patterns of
//   access-group names; a pattern starting with '!' denies the group and is tested first;
//   write permission implies read;
// - for every group of every acl.d/*.json file and each of its "read" / "write" objects that the
//   login has that permission for, every scope entry is granted:
//     table notation  "ubus": { "awl": [ "status" ] }  grants (ubus, awl, status);
//     array notation  "uci": [ "awl" ]                  grants (uci, awl, read|write);
//   and (access-group, <group>, read|write) is granted too;
// - a ubus call from that session is allowed only if (ubus, object, method) was granted.
const fs = require('node:fs');
const path = require('node:path');

const ACL_FILE = path.join(__dirname, '..', 'root/usr/share/rpcd/acl.d/luci-app-awl.json');

// fnmatch for group names: '*' and '?' only (what rpcd configs use).
function fnmatch(pattern, s) {
	const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
	return re.test(s);
}

// login: { read: [patterns], write: [patterns] } as in /etc/config/rpcd's login section.
function testPermission(login, perm, group) {
	const list = login[perm] || [];
	for (const p of list) if (p.startsWith('!') && p.slice(1).trim() && fnmatch(p.slice(1).trim(), group)) return false;
	for (const p of list) if (p && !p.startsWith('!') && fnmatch(p, group)) return true;
	if (perm === 'read') return testPermission(login, 'write', group);
	return false;
}

// The set of granted "scope object function" triples for a login.
function grants(login, acl = JSON.parse(fs.readFileSync(ACL_FILE, 'utf8'))) {
	const out = new Set();
	for (const [group, perms] of Object.entries(acl))
		for (const perm of ['read', 'write']) {
			if (!perms[perm] || typeof perms[perm] !== 'object' || !testPermission(login, perm, group)) continue;
			for (const [scope, v] of Object.entries(perms[perm])) {
				if (Array.isArray(v)) v.forEach((obj) => out.add(`${scope} ${obj} ${perm}`));
				else for (const [obj, fns] of Object.entries(v)) if (Array.isArray(fns)) fns.forEach((f) => out.add(`${scope} ${obj} ${f}`));
				out.add(`access-group ${group} ${perm}`);
			}
		}
	return out;
}

const allowed = (g, scope, obj, fn) => g.has(`${scope} ${obj} ${fn}`) || g.has(`${scope} ${obj} *`);

// The logins the tests use: root (read and write '*') and a read-only user of this app.
const LOGINS = {
	root: { read: ['*'], write: ['*'] },
	readonly: { read: ['luci-app-awl'], write: [] }
};

module.exports = { fnmatch, testPermission, grants, allowed, LOGINS, ACL_FILE };
