'use strict';
// Translatable strings: po/templates/awl.pot is what tests/tools/make-pot.js extracts now, and
// every string the views show through _() is in it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { pot, POT } = require('./tools/make-pot');

test('po/templates/awl.pot is current (run node luci-app-awl/tests/tools/make-pot.js)', () => {
	assert.ok(fs.existsSync(POT), 'awl.pot missing');
	assert.equal(fs.readFileSync(POT, 'utf8'), pot());
});

test('the template has the strings of every page and the menu', () => {
	const text = pot();
	for (const id of ['Accept', 'Invite peer', 'Awl realtime traffic', 'Awl log', 'Awl settings', 'Graphs', 'Log', 'awl\'s own nftables table', 'awl: %s'])
		assert.ok(text.includes(`msgid "${id}"`), id);
	assert.doesNotMatch(text, /msgid "[^"]*\\'/, 'JS escapes are undone');
});
