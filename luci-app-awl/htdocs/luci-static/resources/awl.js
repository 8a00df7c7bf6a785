'use strict';
'require baseclass';
'require rpc';
'require ui';

/*
 * Shared by the awl views: the rpc calls to the daemon (through the 'awl' rpcd object, which
 * forwards to the control socket), the handling of its {ok, result | error} replies, and the
 * rules every view follows:
 * - Text that comes from peers or the daemon (names, aliases, domains, addresses, peer IDs,
 *   log lines, error messages) reaches the DOM only as a text node: inside an array child of
 *   E() (LuCI's dom.append makes array items text nodes, but parses a bare string as HTML).
 *   Never as a bare string child, a title, a description or a modal title.
 * - Only LuCI functions every supported release has (openwrt-23.05, 24.10, master).
 * - Write controls are disabled unless the session may call the daemon's write methods.
 */

const calls = {
	status: rpc.declare({ object: 'awl', method: 'status' }),
	peers: rpc.declare({ object: 'awl', method: 'peers' }),
	requests: rpc.declare({ object: 'awl', method: 'requests' }),
	health: rpc.declare({ object: 'awl', method: 'health' }),
	logs: rpc.declare({ object: 'awl', method: 'logs', params: [ 'lines' ] }),
	invite: rpc.declare({ object: 'awl', method: 'invite', params: [ 'peer_id', 'alias', 'ip', 'address' ] }),
	accept: rpc.declare({ object: 'awl', method: 'accept', params: [ 'peer_id', 'alias' ] }),
	decline: rpc.declare({ object: 'awl', method: 'decline', params: [ 'peer_id' ] }),
	remove: rpc.declare({ object: 'awl', method: 'remove', params: [ 'peer_id' ] })
};

/* rpcd's own check, as LuCI's form.Map uses it for uci: may this login call awl.<method>? */
const callAccess = rpc.declare({
	object: 'session', method: 'access', params: [ 'scope', 'object', 'function' ], expect: { 'access': false }
});

/* base58 libp2p peer IDs as AWL uses them (Ed25519: 12D3KooW + 44 characters). */
const PEER_ID = /^(12D3KooW[1-9A-HJ-NP-Za-km-z]{44}|Qm[1-9A-HJ-NP-Za-km-z]{44})$/;

/* A notification that goes away by itself (ui.addTimeLimitedNotification is missing in 23.05). */
function notify(text, kind, timeout) {
	const n = ui.addNotification(null, E('p', {}, [ text ]), kind || 'info');
	if (timeout && n)
		window.setTimeout(function() { if (n.parentNode) n.parentNode.removeChild(n); }, timeout);
	return n;
}

return baseclass.extend({
	PEER_ID: PEER_ID,
	notify: notify,

	/* Resolves to true when this login may call the daemon's write methods (invite, accept, …). */
	canWrite() {
		return callAccess('ubus', 'awl', 'invite').then(function(ok) { return ok === true; }, function() { return false; });
	},

	/* Calls a daemon method; resolves to its result, rejects with its error message. */
	call(method, ...args) {
		return calls[method](...args).then(function(res) {
			if (res && res.ok === true)
				return res.result;
			throw new Error((res && res.error) || _('No answer from the awl daemon'));
		});
	},

	/* Runs a call for a button; shows failures instead of swallowing them. */
	act(method, args, done) {
		return this.call(method, ...args).then(done, function(err) {
			ui.addNotification(null, E('p', {}, [ _('awl: %s').format(err.message || err) ]), 'error');
		});
	},

	validPeerId(value) {
		return PEER_ID.test(value || '') ? true : _('Expecting a peer ID (12D3KooW…)');
	},

	bytes(n) {
		const units = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ];
		let i = 0;
		n = +n || 0;
		while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
		return '%.1f %s'.format(n, units[i]);
	},

	ago(unix) {
		if (!unix) return _('never');
		const s = Math.max(0, Math.floor(Date.now() / 1000) - unix);
		if (s < 60) return _('%ds ago').format(s);
		if (s < 3600) return _('%dm ago').format(Math.floor(s / 60));
		if (s < 86400) return _('%dh ago').format(Math.floor(s / 3600));
		return _('%dd ago').format(Math.floor(s / 86400));
	}
});
