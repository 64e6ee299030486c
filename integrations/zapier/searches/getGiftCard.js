'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performSearch } = require('../lib/referflow');

const operation = {
  method: 'GET',
  path: '/v1/gift-cards/{code}',
  idempotent: false,
  fields: [
    {
      key: 'code',
      in: 'path',
      property: 'code',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'getGiftCard',
  noun: 'Gift Card',
  display: {
    label: 'Find Gift Card',
    description: 'Get a gift card by code, with its balance and ledger entries.',
  },
  operation: {
    inputFields: [
      {
        key: 'code',
        label: 'Gift Card Code',
        required: true,
        type: 'string',
        helpText: 'The gift card\'s code.',
      },
    ],
    perform: performSearch(operation),
    sample: {
      id: 'gc_n16o0mi7o6ijao389s8y',
      code: '98HD8W855B3WTQM2',
      amount: 2500,
      balance: 2000,
      currency: 'EUR',
      status: 'active',
      expires_at: '2027-11-23T18:32:21.945494Z',
      side: 'advocate',
      referral_id: 'ref_by9h34ufi7a235fonak1',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      created_at: '2026-11-23T18:32:21.945494Z',
      entries: [
        {
          kind: 'issue',
          amount: 2500,
          balance_after: 2500,
          at: '2026-11-23T18:32:21.948430Z',
          reference: null,
        },
        {
          kind: 'redeem',
          amount: -500,
          balance_after: 2000,
          at: '2026-11-23T18:32:21.967139Z',
          reference: 'order 1001',
        },
      ],
    },
  },
};
