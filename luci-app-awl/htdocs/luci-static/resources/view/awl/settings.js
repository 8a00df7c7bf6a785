'use strict';
'require view';
'require form';

/* Settings: the 'main' section. Datatypes match the daemon's validation ('awl config schema'). */

return view.extend({
	render() {
		const m = new form.Map('awl', _('Awl settings'),
			_('Save & Apply reloads the daemon; peers stay connected. Port, interface, address and MTU changes restart it.'));
		const s = m.section(form.NamedSection, 'main', 'awl');
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('network', _('Network'));
		s.tab('advanced', _('Advanced'));

		let o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'name', _('Name'), _('Shown to peers; default: the host name'));
		o.datatype = 'maxlength(64)';

		o = s.taboption('general', form.Value, 'listen_port', _('Listen port'), _('UDP, QUIC'));
		o.datatype = 'range(0,65535)';
		o.placeholder = '4363';

		o = s.taboption('general', form.Value, 'interface', _('Interface'));
		o.datatype = 'maxlength(15)';
		o.placeholder = 'awl0';

		o = s.taboption('general', form.Value, 'address', _('Mesh address'), _('This node\'s address and prefix, e.g. 10.66.0.1/16'));
		o.datatype = 'cidr4';
		o.placeholder = '10.66.0.1/16';

		o = s.taboption('general', form.Value, 'mtu', _('MTU'), _('3500 as AWL; 1420 behind PPPoE'));
		o.datatype = 'range(576,9000)';
		o.placeholder = '3500';

		o = s.taboption('network', form.DynamicList, 'route', _('Exported LAN routes'), _('Prefixes peers with "Allow LAN" may reach, e.g. 192.168.1.0/24'));
		o.datatype = 'cidr4';

		o = s.taboption('network', form.Flag, 'gateway', _('Exit node'), _('Let peers with "Allow exit" use this router for all their traffic'));
		o.default = '0';

		o = s.taboption('network', form.Value, 'exit_node', _('Use exit node'), _('Peer ID or alias of a peer to send all traffic through'));
		o.datatype = 'maxlength(64)';

		o = s.taboption('network', form.ListValue, 'firewall', _('Firewall'));
		o.value('auto', _('Automatic (fw4 zone on OpenWrt)'));
		o.value('nftables', _('awl\'s own nftables table'));
		o.value('none', _('None'));
		o.default = 'auto';

		o = s.taboption('network', form.Flag, 'snat_lan', _('Masquerade into LAN'), _('LAN hosts see the router as the source of mesh traffic'));
		o.default = '1';

		o = s.taboption('advanced', form.DynamicList, 'bootstrap', _('Bootstrap peers'), _('Multiaddrs that end in /p2p/ and the peer ID'));
		o.datatype = 'string';

		o = s.taboption('advanced', form.Flag, 'use_default_bootstrap', _('Use AWL\'s public bootstrap nodes'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'lan_discovery', _('LAN discovery'), _('Find known peers on the local network without bootstrap nodes'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'use_relays', _('Use relays'), _('Hold relay reservations on bootstrap peers so peers reach this router behind NAT'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'listen_tcp', _('Listen on TCP'), _('Also accept peers over TCP on the listen port (as AWL does), for networks that drop UDP'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'hole_punching', _('Hole punching'), _('Upgrade relayed connections to direct ones'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'datagrams', _('Datagram tunnel'), _('Carry packets to other awl routers in QUIC datagrams (AWL peers keep the stream tunnel)'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'services', _('Local services'), _('Ping, DNS for PEER.awl names and a status page on the service address'));
		o.default = '1';

		o = s.taboption('network', form.Value, 'service_address', _('Service address'), _('Inside the mesh subnet; empty: its last address (10.66.255.254)'));
		o.datatype = 'ip4addr';
		o.placeholder = '10.66.255.254';
		o.depends('services', '1');

		o = s.taboption('network', form.Value, 'dns_upstream', _('DNS upstream'), _('Resolver for other names; empty: the system resolver'));
		o.datatype = 'ip4addr';
		o.placeholder = '127.0.0.1';
		o.depends('services', '1');

		o = s.taboption('network', form.Flag, 'socks5_server', _('SOCKS5 exit for peers'), _('Peers allowed to use this node as exit may open connections from it'));
		o.default = '1';

		o = s.taboption('network', form.Flag, 'socks5', _('SOCKS5 proxy'), _('A local proxy whose connections leave through a peer'));
		o.default = '0';

		o = s.taboption('network', form.Value, 'socks5_address', _('SOCKS5 proxy address'));
		o.datatype = 'ip4addr';
		o.placeholder = '127.0.0.1';
		o.depends('socks5', '1');

		o = s.taboption('network', form.Value, 'socks5_port', _('SOCKS5 proxy port'));
		o.datatype = 'range(1,65535)';
		o.placeholder = '1080';
		o.depends('socks5', '1');

		o = s.taboption('network', form.Value, 'socks5_exit', _('SOCKS5 exit peer'), _('Peer ID or alias'));
		o.datatype = 'maxlength(64)';
		o.depends('socks5', '1');

		o = s.taboption('advanced', form.Flag, 'serve', _('Serve as bootstrap and relay'), _('For a router with a public address: other nodes find peers and relay through it'));
		o.default = '0';

		o = s.taboption('advanced', form.ListValue, 'relay_for', _('Relay for'));
		o.value('friends', _('Known peers only'));
		o.value('all', _('Anyone'));
		o.default = 'friends';
		o.depends('serve', '1');

		o = s.taboption('advanced', form.Value, 'relay_max_circuits', _('Relayed circuits at most'));
		o.datatype = 'range(1,1024)';
		o.placeholder = '16';
		o.depends('serve', '1');

		o = s.taboption('advanced', form.Flag, 'auto_accept', _('Accept every friend request'));
		o.default = '0';

		o = s.taboption('advanced', form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		o = s.taboption('advanced', form.Value, 'reconnect_interval', _('Reconnect interval (s)'));
		o.datatype = 'range(5,3600)';
		o.placeholder = '20';

		o = s.taboption('advanced', form.Value, 'max_peers', _('Max peers'));
		o.datatype = 'range(1,1024)';
		o.placeholder = '64';

		o = s.taboption('advanced', form.Value, 'packet_pool', _('Packet buffers'));
		o.datatype = 'range(64,65536)';
		o.placeholder = '1024';

		o = s.taboption('advanced', form.Value, 'peer_queue', _('Queue per peer (packets)'));
		o.datatype = 'range(16,4096)';
		o.placeholder = '256';

		return m.render();
	}
});
