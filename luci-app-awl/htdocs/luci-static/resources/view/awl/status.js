'use strict';
'require view';
'require poll';
'require ui';
'require awl';

/*
 * Status: this node, what is wrong (the daemon's health checks), live peers (refreshed every
 * 5 s) and pending friend requests. Friend-request names and peer aliases are chosen by other
 * people: they are only ever text nodes (see awl.js).
 */

function short(id) {
	return id ? id.substr(0, 8) + '…' + id.substr(-6) : '-';
}

function copyButton(text) {
	return E('button', {
		'class': 'cbi-button cbi-button-neutral',
		'title': _('Copy'),
		'click': function() {
			if (navigator.clipboard)
				navigator.clipboard.writeText(text);
			awl.notify(_('Peer ID copied'), 'info', 3000);
		}
	}, [ _('Copy') ]);
}

/* What to do about a failed health check, by check name. */
const ADVICE = {
	'interface': _('The tunnel interface is missing: install kmod-tun, then restart awl.'),
	'bootstrap': _('No bootstrap peer is reachable: check the WAN connection and the bootstrap list under Settings → Advanced; a firewall may block outgoing UDP.'),
	'relay': _('No relay reservation: peers behind NAT cannot reach this router until a bootstrap peer that relays is reachable.'),
	'udp': _('No direct UDP path: allow outgoing UDP in the network\'s firewall (peers are reached over TCP or relays meanwhile, which is slower), or, when peers are reached only through relays, forward the listen port to this router.'),
	'listen': _('The listen port is in use by another program: choose another port under Settings.'),
	'config': _('The configuration has an error: fix it under Settings or in /etc/config/awl.'),
	'peers': _('No confirmed peer is connected: they may be offline, or unreachable without a relay.'),
	'packet pool': _('All packet buffers are in use: raise "Packet buffers" under Settings → Advanced.')
};

return view.extend({
	load() {
		return Promise.all([
			awl.call('status').catch(function(e) { return { error: e.message }; }),
			awl.call('peers').catch(function() { return []; }),
			awl.call('requests').catch(function() { return []; }),
			awl.call('health').catch(function() { return null; }),
			awl.canWrite()
		]);
	},

	renderNode(st) {
		if (st.error)
			return E('div', { 'class': 'alert-message warning', 'id': 'awl-node' }, [
				E('p', {}, [ _('The awl daemon is not answering: %s').format(st.error) ]),
				E('p', {}, [ _('Enable and start it under Settings, or run /etc/init.d/awl start.') ])
			]);
		const row = function(k, v) {
			return E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td left', 'width': '25%' }, [ k ]), E('td', { 'class': 'td left' }, Array.isArray(v) ? v : [ v ]) ]);
		};
		const reach = [ _('%d bootstrap peer(s) connected').format(st.bootstrap_connected || 0), E('br'),
			(st.circuit_addrs || []).length ? _('reachable through %d relay(s)').format((st.relays || []).length) : _('no relay reservation') ];
		if (st.serving)
			reach.push(E('br'), _('serving as bootstrap and relay'));
		return E('table', { 'class': 'table', 'id': 'awl-node' }, [
			row(_('Name'), st.name),
			row(_('Peer ID'), [ E('code', {}, [ st.peer_id ]), ' ', copyButton(st.peer_id) ]),
			row(_('Mesh IP'), '%s/%d'.format(st.mesh_ip, st.prefix) + (st.interface ? ' (' + st.interface + ')' : '')),
			row(_('Listening on'), (st.listen_addrs || []).map(function(a) { return E('div', {}, [ E('code', {}, [ a ]) ]); })),
			row(_('Uptime'), '%t'.format(st.uptime_secs || 0)),
			row(_('Peers'), _('%d known, %d connected').format(st.peers_known, st.peers_connected)),
			row(_('Reachability'), reach),
			row(_('Traffic'), _('%s received, %s sent').format(awl.bytes(st.traffic && st.traffic.rx_bytes), awl.bytes(st.traffic && st.traffic.tx_bytes)))
		]);
	},

	/* The daemon's failed health checks, each with what to do about it. */
	renderHealth(health) {
		const failed = ((health && health.checks) || []).filter(function(c) { return c.ok === false; });
		if (!failed.length)
			return E('div', { 'id': 'awl-health' }, []);
		return E('div', { 'class': 'alert-message warning', 'id': 'awl-health' }, failed.map(function(c) {
			return E('p', {}, [
				E('strong', {}, [ String(c.check) + ': ' ]), String(c.detail || ''),
				ADVICE[c.check] ? E('br') : '', ADVICE[c.check] || ''
			]);
		}));
	},

	renderPeers(peers) {
		const t = E('table', { 'class': 'table', 'id': 'awl-peers' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Alias') ]), E('th', { 'class': 'th' }, [ _('Peer ID') ]),
				E('th', { 'class': 'th' }, [ _('Mesh IP') ]), E('th', { 'class': 'th' }, [ _('State') ]),
				E('th', { 'class': 'th' }, [ _('Path') ]), E('th', { 'class': 'th' }, [ _('RTT') ]),
				E('th', { 'class': 'th' }, [ _('Traffic (rx / tx)') ]), E('th', { 'class': 'th' }, [ _('Last seen') ])
			])
		]);
		if (!peers.length)
			t.appendChild(E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, [ E('em', {}, [ _('No peers yet: invite one under Peers.') ]) ]) ]));
		peers.forEach(function(p) {
			const state = p.declined ? _('declined') : !p.confirmed ? _('invited') : p.connected ? _('online') : _('offline');
			t.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ p.alias || '' ]),
				E('td', { 'class': 'td', 'title': p.peer_id }, [ E('code', {}, [ short(p.peer_id) ]) ]),
				E('td', { 'class': 'td' }, [ p.ip || '' ]),
				E('td', { 'class': 'td' }, [ E('span', { 'class': 'awl-' + (p.connected ? 'up' : 'down') }, [ state ]) ]),
				E('td', { 'class': 'td' }, [ p.path || '-' ]),
				E('td', { 'class': 'td' }, [ p.rtt_ms != null ? '%.1f ms'.format(p.rtt_ms) : '-' ]),
				E('td', { 'class': 'td' }, [ awl.bytes(p.traffic && p.traffic.rx_bytes) + ' / ' + awl.bytes(p.traffic && p.traffic.tx_bytes) ]),
				E('td', { 'class': 'td' }, [ p.connected ? _('now') : awl.ago(p.last_seen) ])
			]));
		});
		return t;
	},

	renderRequests(requests) {
		const self = this;
		const writable = this.writable === true;
		if (!requests.length)
			return E('div', { 'id': 'awl-requests' }, [ E('em', {}, [ _('No pending friend requests.') ]) ]);
		return E('table', { 'class': 'table', 'id': 'awl-requests' }, requests.map(function(r) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, [ r.name || _('(no name)') ]),
				E('td', { 'class': 'td' }, [ E('code', {}, [ r.peer_id ]) ]),
				E('td', { 'class': 'td right' }, [
					E('button', {
						'class': 'cbi-button cbi-button-positive',
						'disabled': writable ? null : '',
						'title': writable ? null : _('Read-only login'),
						'click': ui.createHandlerFn(self, function() {
							if (!writable) return;
							return awl.act('accept', [ r.peer_id, r.name ], function() { return self.refresh(); });
						})
					}, [ _('Accept') ]), ' ',
					E('button', {
						'class': 'cbi-button cbi-button-negative',
						'disabled': writable ? null : '',
						'title': writable ? null : _('Read-only login'),
						'click': ui.createHandlerFn(self, function() {
							if (!writable) return;
							return awl.act('decline', [ r.peer_id ], function() { return self.refresh(); });
						})
					}, [ _('Decline') ])
				])
			]);
		}));
	},

	refresh() {
		const self = this;
		return this.load().then(function(data) {
			self.writable = data[4];
			[ [ 'awl-node', self.renderNode, 0 ], [ 'awl-health', self.renderHealth, 3 ], [ 'awl-peers', self.renderPeers, 1 ], [ 'awl-requests', self.renderRequests, 2 ] ].forEach(function(x) {
				const old = document.getElementById(x[0]);
				const fresh = x[1].call(self, data[x[2]]);
				if (old && old.parentNode) old.parentNode.replaceChild(fresh, old);
			});
		});
	},

	render(data) {
		const self = this;
		this.writable = data[4];
		poll.add(function() { return self.refresh(); }, 5);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Awl mesh VPN') ]),
			this.renderHealth(data[3]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('This node') ]), this.renderNode(data[0]) ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('Peers') ]), this.renderPeers(data[1]) ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('Friend requests') ]), this.renderRequests(data[2]) ])
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
