'use strict';
'require view';
'require poll';
'require ui';
'require awl';

/* Status: this node, live peers (refreshed every 5 s), pending friend requests. */

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
			ui.addTimeLimitedNotification(null, E('p', _('Peer ID copied')), 3000, 'info');
		}
	}, _('Copy'));
}

return view.extend({
	load() {
		return Promise.all([
			awl.call('status').catch(function(e) { return { error: e.message }; }),
			awl.call('peers').catch(function() { return []; }),
			awl.call('requests').catch(function() { return []; })
		]);
	},

	renderNode(st) {
		if (st.error)
			return E('div', { 'class': 'alert-message warning', 'id': 'awl-node' }, [
				E('p', _('The awl daemon is not answering: %s').format(st.error)),
				E('p', _('Enable and start it under Settings, or run /etc/init.d/awl start.'))
			]);
		const row = function(k, v) { return E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td left', 'width': '25%' }, k), E('td', { 'class': 'td left' }, v) ]); };
		return E('table', { 'class': 'table', 'id': 'awl-node' }, [
			row(_('Name'), st.name),
			row(_('Peer ID'), [ E('code', {}, st.peer_id), ' ', copyButton(st.peer_id) ]),
			row(_('Mesh IP'), '%s/%d'.format(st.mesh_ip, st.prefix) + (st.interface ? ' (' + st.interface + ')' : '')),
			row(_('Listening on'), (st.listen_addrs || []).map(function(a) { return E('div', {}, E('code', {}, a)); })),
			row(_('Uptime'), '%t'.format(st.uptime_secs || 0)),
			row(_('Peers'), _('%d known, %d connected').format(st.peers_known, st.peers_connected)),
			row(_('Reachability'), [
				_('%d bootstrap peer(s) connected').format(st.bootstrap_connected || 0),
				E('br'),
				(st.circuit_addrs || []).length ? _('reachable through %d relay(s)').format((st.relays || []).length) : _('no relay reservation'),
				st.serving ? [ E('br'), _('serving as bootstrap and relay') ] : ''
			]),
			row(_('Traffic'), _('%s received, %s sent').format(awl.bytes(st.traffic && st.traffic.rx_bytes), awl.bytes(st.traffic && st.traffic.tx_bytes)))
		]);
	},

	renderPeers(peers) {
		const t = E('table', { 'class': 'table', 'id': 'awl-peers' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, _('Alias')), E('th', { 'class': 'th' }, _('Peer ID')),
				E('th', { 'class': 'th' }, _('Mesh IP')), E('th', { 'class': 'th' }, _('State')),
				E('th', { 'class': 'th' }, _('Path')), E('th', { 'class': 'th' }, _('RTT')),
				E('th', { 'class': 'th' }, _('Traffic (rx / tx)')), E('th', { 'class': 'th' }, _('Last seen'))
			])
		]);
		if (!peers.length)
			t.appendChild(E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td' }, E('em', {}, _('No peers yet: invite one under Peers.')))));
		peers.forEach(function(p) {
			const state = p.declined ? _('declined') : !p.confirmed ? _('invited') : p.connected ? _('online') : _('offline');
			t.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, p.alias),
				E('td', { 'class': 'td', 'title': p.peer_id }, E('code', {}, short(p.peer_id))),
				E('td', { 'class': 'td' }, p.ip),
				E('td', { 'class': 'td' }, E('span', { 'class': 'awl-' + (p.connected ? 'up' : 'down') }, state)),
				E('td', { 'class': 'td' }, p.path || '-'),
				E('td', { 'class': 'td' }, p.rtt_ms != null ? '%.1f ms'.format(p.rtt_ms) : '-'),
				E('td', { 'class': 'td' }, awl.bytes(p.traffic && p.traffic.rx_bytes) + ' / ' + awl.bytes(p.traffic && p.traffic.tx_bytes)),
				E('td', { 'class': 'td' }, p.connected ? _('now') : awl.ago(p.last_seen))
			]));
		});
		return t;
	},

	renderRequests(requests) {
		const self = this;
		if (!requests.length)
			return E('div', { 'id': 'awl-requests' }, E('em', {}, _('No pending friend requests.')));
		return E('table', { 'class': 'table', 'id': 'awl-requests' }, requests.map(function(r) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td' }, r.name || _('(no name)')),
				E('td', { 'class': 'td' }, E('code', {}, r.peer_id)),
				E('td', { 'class': 'td right' }, [
					E('button', {
						'class': 'cbi-button cbi-button-positive',
						'click': ui.createHandlerFn(self, function() {
							return awl.act('accept', [ r.peer_id, r.name ], function() { return self.refresh(); });
						})
					}, _('Accept')), ' ',
					E('button', {
						'class': 'cbi-button cbi-button-negative',
						'click': ui.createHandlerFn(self, function() {
							return awl.act('decline', [ r.peer_id ], function() { return self.refresh(); });
						})
					}, _('Decline'))
				])
			]);
		}));
	},

	refresh() {
		const self = this;
		return this.load().then(function(data) {
			[ 'awl-node', 'awl-peers', 'awl-requests' ].forEach(function(id, i) {
				const old = document.getElementById(id);
				const fresh = [ self.renderNode, self.renderPeers, self.renderRequests ][i].call(self, data[i]);
				if (old && old.parentNode) old.parentNode.replaceChild(fresh, old);
			});
		});
	},

	render(data) {
		const self = this;
		poll.add(function() { return self.refresh(); }, 5);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, _('Awl mesh VPN')),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('This node')), this.renderNode(data[0]) ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Peers')), this.renderPeers(data[1]) ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Friend requests')), this.renderRequests(data[2]) ])
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
