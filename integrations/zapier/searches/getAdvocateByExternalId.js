'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performSearch } = require('../lib/referflow');

const operation = {
  method: 'GET',
  path: '/v1/advocates/by-external-id/{external_id}',
  idempotent: false,
  fields: [
    {
      key: 'externalId',
      in: 'path',
      property: 'external_id',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'getAdvocateByExternalId',
  noun: 'Advocate',
  display: {
    label: 'Find Advocate',
    description: 'Find an advocate by your external ID, with their codes and referral counts.',
  },
  operation: {
    inputFields: [
      {
        key: 'externalId',
        label: 'Advocate External ID',
        required: true,
        type: 'string',
        helpText: 'Your ID for the advocate.',
      },
    ],
    perform: performSearch(operation),
    sample: {
      id: 'adv_or2blacr2m7fl2c7kql7',
      external_id: 'cus_Ann',
      email: 'ann@example.com',
      name: 'Ann',
      codes: [
        {
          code: 'NPTRSAJG',
          active: true,
          vanity: false,
          url: 'https://refer.example.com/r/NPTRSAJG',
        },
      ],
      stats: {
        clicks: 0,
        referrals: 1,
        qualified: 1,
        approved: 1,
        rewarded: 1,
        rejected: 0,
        reversed: 0,
      },
      tier: null,
      flagged: false,
      events: [],
      created_at: '2026-11-23T18:32:21.892785Z',
    },
  },
};
