'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performSearch } = require('../lib/referflow');

const operation = {
  method: 'GET',
  path: '/v1/reviews',
  idempotent: false,
  fields: [
    {
      key: 'limit',
      in: 'query',
      property: 'limit',
      type: 'integer',
    },
  ],
  output: 'items',
};

module.exports = {
  key: 'listReviews',
  noun: 'Review',
  display: {
    label: 'List Referrals in Review',
    description: 'List the referrals waiting for review, oldest first.',
  },
  operation: {
    inputFields: [
      {
        key: 'limit',
        label: 'Limit',
        required: false,
        type: 'integer',
        helpText: 'Max referrals to return (1-200).',
        default: '50',
      },
    ],
    perform: performSearch(operation),
    sample: {
      id: 'ref_odpfxmbxcu3zk57zzso6',
      program_id: 'prg_62wz1odzzi6u8mqurit9',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      code: 'NPTRSAJG',
      click_id: null,
      friend: {
        external_id: 'cus_Carl',
        email: 'carl@mailinator.com',
      },
      status: 'in_review',
      reasons: [
        {
          code: 'disposable_email',
          message: 'mailinator.com is a disposable email domain.',
        },
      ],
      qualification: null,
      hold_until: null,
      approved_at: null,
      review_deadline: '2026-11-26T18:32:21.991110Z',
      rewards: null,
      created_at: '2026-11-23T18:32:21.991110Z',
      updated_at: '2026-11-23T18:32:21.991110Z',
    },
  },
};
