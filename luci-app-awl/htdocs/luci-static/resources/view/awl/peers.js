'use strict';
'require view';
'require form';
'require ui';
'require awl';

/*
 * Peers: the UCI 'peer' sections, an "Invite peer" dialog and removal through the daemon.
 *
 * Who writes what in /etc/config/awl: the daemon adds and removes whole peer sections, each
 * named after the peer ('peer_<peer ID>'), and keeps every other line as it is. This grid only
 * edits options of existing sections, through LuCI's staged uci changes addressed by those
 * section names (never by position), so a peer the daemon removes meanwhile cannot
 * redirect a staged edit to another peer. Save & Apply commits the staged changes; rpcd's
 * config.change makes the daemon reload.
 */

return view.extend({
	load() {
		return awl.canWrite();
	},

	handleInvite(map) {
		if (!this.writable)
			return Promise.resolve();
		const id = E('input', { 'class': 'cbi-input-text', 'id': 'awl-invite-id', 'placeholder': '12D3KooW…', 'style': 'width:100%' });
		const alias = E('input', { 'class': 'cbi-input-text', 'id': 'awl-invite-alias', 'placeholder': _('e.g. office-router') });
		const ip = E('input', { 'class': 'cbi-input-text', 'id': 'awl-invite-ip', 'placeholder': _('allocated') });
		const addr = E('input', { 'class': 'cbi-input-text', 'id': 'awl-invite-address', 'placeholder': '/ip4/203.0.113.7/udp/4363/quic-v1' });
		const err = E('p', { 'class': 'alert-message warning', 'style': 'display:none' });
		const field = function(label, input) { return E('div', { 'class': 'cbi-value' }, [ E('label', { 'class': 'cbi-value-title' }, [ label ]), E('div', { 'class': 'cbi-value-field' }, [ input ]) ]); };
		ui.showModal(_('Invite peer'), [
			field(_('Peer ID'), id), field(_('Alias'), alias), field(_('Mesh IP'), ip), field(_('Address'), addr), err,
			E('div', { 'class': 'right' }, [
				E('button', { 'class': 'cbi-button', 'click': ui.hideModal }, [ _('Cancel') ]), ' ',
				E('button', {
					'class': 'cbi-button cbi-button-positive', 'id': 'awl-invite-send',
					'click': ui.createHandlerFn(this, function() {
						const ok = awl.validPeerId(id.value.trim());
						if (ok !== true) {
							err.textContent = ok;
							err.style.display = '';
							return;
						}
						return awl.act('invite', [ id.value.trim(), alias.value.trim(), ip.value.trim(), addr.value.trim() ], function(p) {
							ui.hideModal();
							awl.notify(_('Invited %s (%s)').format(p.alias, p.ip), 'info', 5000);
							return map.load().then(function() { return map.reset(); });
						});
					})
				}, [ _('Invite') ])
			])
		]);
	},

	render(writable) {
		const self = this;
		this.writable = writable === true;
		const m = new form.Map('awl', _('Awl peers'),
			_('Known peers. Invite a peer by its ID; it appears as "invited" until it accepts. Removing a peer also blocks it, as in AWL.'));
		const s = m.section(form.GridSection, 'peer');
		s.anonymous = true;
		/* A read-only login: LuCI disables the grid's inputs, Add and Delete buttons. */
		if (!this.writable)
			m.readonly = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.sortable = false;

		/* New peers come from the daemon (invite/accept), which writes their sections. */
		s.handleAdd = function() { return self.handleInvite(m); };
		s.renderSectionAdd = function(extra_class) {
			const el = form.GridSection.prototype.renderSectionAdd.apply(this, [ extra_class ]);
			const btn = el.querySelector ? el.querySelector('.cbi-button-add') : null;
			if (btn) btn.textContent = _('Invite peer');
			return el;
		};
		/* Removal goes through the daemon: it blocks the peer and drops its section. */
		s.handleRemove = function(section_id) {
			if (!self.writable)
				return Promise.resolve();
			const peer = this.map.data.get('awl', section_id, 'peer_id');
			const alias = this.map.data.get('awl', section_id, 'alias') || peer;
			if (!confirm(_('Remove and block peer %s?').format(alias)))
				return Promise.resolve();
			return awl.act('remove', [ peer ], function() { return m.load().then(function() { return m.reset(); }); });
		};

		let o = s.option(form.Value, 'alias', _('Alias'));
		o.datatype = 'maxlength(64)';
		o.rmempty = true;

		o = s.option(form.Value, 'peer_id', _('Peer ID'));
		o.readonly = true;
		o.validate = function(section_id, value) { return awl.validPeerId(value); };

		o = s.option(form.Value, 'ip', _('Mesh IP'));
		o.datatype = 'ip4addr("nomask")';
		o.placeholder = _('allocated');
		o.rmempty = true;

		o = s.option(form.Flag, 'allow_exit', _('Allow exit'), _('May use this router as exit node'));
		o.default = '0';
		o.rmempty = true;

		o = s.option(form.Flag, 'allow_lan', _('Allow LAN'), _('May reach the exported LAN routes'));
		o.default = '0';
		o.rmempty = true;

		o = s.option(form.Flag, 'accept_routes', _('Accept routes'), _('Install the private LAN routes this peer announces (10/8, 172.16/12, 192.168/16, 100.64/10)'));
		o.default = '0';
		o.rmempty = true;

		o = s.option(form.DynamicList, 'accept_route', _('Other accepted prefixes'), _('Public prefixes this peer may announce, e.g. 203.0.113.0/24'));
		o.datatype = 'cidr4';
		o.modalonly = true;
		o.depends('accept_routes', '1');

		o = s.option(form.DynamicList, 'address', _('Addresses'));
		o.datatype = 'string';
		o.modalonly = true;

		o = s.option(form.Value, 'domain', _('DNS name'), _('Name in the .awl zone'));
		o.datatype = 'maxlength(63)';
		o.modalonly = true;

		return m.render();
	}
});
