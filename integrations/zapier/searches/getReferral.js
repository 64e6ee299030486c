'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performSearch } = require('../lib/referflow');

const operation = {
  method: 'GET',
  path: '/v1/referrals/{referral_id}',
  idempotent: false,
  fields: [
    {
      key: 'referralId',
      in: 'path',
      property: 'referral_id',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'getReferral',
  noun: 'Referral',
  display: {
    label: 'Find Referral',
    description: 'Get a referral by ID, with its status, reasons and full history.',
  },
  operation: {
    inputFields: [
      {
        key: 'referralId',
        label: 'Referral ID',
        required: true,
        type: 'string',
        helpText: 'The referral\'s ID (ref_...).',
      },
    ],
    perform: performSearch(operation),
    sample: {
      id: 'ref_by9h34ufi7a235fonak1',
      program_id: 'prg_62wz1odzzi6u8mqurit9',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      code: 'NPTRSAJG',
      click_id: null,
      friend: {
        external_id: 'cus_Bob',
        email: 'bob@example.com',
      },
      status: 'rewarded',
      reasons: [],
      qualification: {
        event_id: 'in_1',
        amount: 4900,
        currency: 'EUR',
        occurred_at: '2026-11-20T10:00:00Z',
      },
      hold_until: null,
      approved_at: '2026-11-23T18:32:21.930782Z',
      review_deadline: null,
      rewards: {
        advocate: 2500,
        friend: 1000,
      },
      created_at: '2026-11-23T18:32:21.911374Z',
      updated_at: '2026-11-23T18:32:21.956042Z',
      history: [
        {
          at: '2026-11-23T18:32:21.921901Z',
          action: 'claimed',
          actor: {
            type: 'api_key',
            id: 'key_jk34k8ogjbc6dqro1z3i',
          },
          from_status: null,
          to_status: 'pending',
          reasons: [],
          data: {
            code: 'NPTRSAJG',
            click_id: null,
            rules: [
              {
                rule: 'self_referral',
                outcome: 'pass',
              },
              {
                rule: 'same_payment_method',
                outcome: 'pass',
              },
              {
                rule: 'same_household',
                outcome: 'pass',
              },
              {
                rule: 'disposable_email',
                outcome: 'pass',
              },
              {
                rule: 'velocity',
                outcome: 'pass',
              },
              {
                rule: 'existing_customer',
                outcome: 'pass',
              },
              {
                rule: 'inactive_code',
                outcome: 'pass',
              },
              {
                rule: 'outside_attribution_window',
                outcome: 'pass',
              },
              {
                rule: 'late_claim',
                outcome: 'pass',
              },
              {
                rule: 'advocate_flagged',
                outcome: 'pass',
              },
            ],
            inputs: {},
          },
          config_version: 1,
        },
        {
          at: '2026-11-23T18:32:21.933186Z',
          action: 'qualified',
          actor: {
            type: 'api_key',
            id: 'key_jk34k8ogjbc6dqro1z3i',
          },
          from_status: 'pending',
          to_status: 'approved',
          reasons: [],
          data: {
            event: {
              event_id: 'in_1',
              type: 'first_order',
              amount: 4900,
              currency: 'EUR',
              occurred_at: '2026-11-20T10:00:00Z',
            },
            tier: null,
            rewards: {
              advocate: 2500,
              friend: 1000,
            },
          },
          config_version: 1,
        },
        {
          at: '2026-11-23T18:32:21.956064Z',
          action: 'rewarded',
          actor: {
            type: 'api_key',
            id: 'key_jk34k8ogjbc6dqro1z3i',
          },
          from_status: 'approved',
          to_status: 'rewarded',
          reasons: [],
          data: {
            gift_cards: {
              advocate: {
                id: 'gc_n16o0mi7o6ijao389s8y',
                amount: 2500,
                currency: 'EUR',
              },
              friend: {
                id: 'gc_642zv5bcnomeo3q7axu7',
                amount: 1000,
                currency: 'EUR',
              },
            },
            non_cash: {},
          },
          config_version: 1,
        },
      ],
    },
  },
};
