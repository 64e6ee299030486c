'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { subscribe, unsubscribe, receive, latestEvents } = require('../lib/referflow');

module.exports = {
  key: 'referralEvent',
  noun: 'Event',
  display: {
    label: 'New Referral Event',
    description: 'Starts when referflow sends one of the chosen events (signed webhooks; the subscription is created and deleted for you).',
  },
  operation: {
    type: 'hook',
    inputFields: [
      {
        key: 'event',
        label: 'Event',
        required: true,
        choices: [
          {
            value: 'referral.claimed',
            label: 'referral.claimed',
            sample: 'referral.claimed',
          },
          {
            value: 'referral.in_review',
            label: 'referral.in_review',
            sample: 'referral.in_review',
          },
          {
            value: 'referral.qualified',
            label: 'referral.qualified',
            sample: 'referral.qualified',
          },
          {
            value: 'referral.approved',
            label: 'referral.approved',
            sample: 'referral.approved',
          },
          {
            value: 'referral.rejected',
            label: 'referral.rejected',
            sample: 'referral.rejected',
          },
          {
            value: 'referral.reversed',
            label: 'referral.reversed',
            sample: 'referral.reversed',
          },
          {
            value: 'referral.rewarded',
            label: 'referral.rewarded',
            sample: 'referral.rewarded',
          },
          {
            value: 'reward.issued',
            label: 'reward.issued',
            sample: 'reward.issued',
          },
          {
            value: 'reward.redeemed',
            label: 'reward.redeemed',
            sample: 'reward.redeemed',
          },
          {
            value: 'reward.failed',
            label: 'reward.failed',
            sample: 'reward.failed',
          },
          {
            value: 'advocate.tier_changed',
            label: 'advocate.tier_changed',
            sample: 'advocate.tier_changed',
          },
          {
            value: 'advocate.link_created',
            label: 'advocate.link_created',
            sample: 'advocate.link_created',
          },
        ],
        helpText: 'The referflow event that starts the Zap.',
      },
    ],
    performSubscribe: subscribe,
    performUnsubscribe: unsubscribe,
    perform: receive,
    performList: latestEvents,
    sample: {
      id: 'evt_7kmzf1qh817rfs1xtghp',
      type: 'referral.approved',
      created_at: '2026-11-23T18:32:21.933789Z',
      program_id: 'prg_62wz1odzzi6u8mqurit9',
      data: {
        referral: {
          id: 'ref_by9h34ufi7a235fonak1',
          program_id: 'prg_62wz1odzzi6u8mqurit9',
          advocate_id: 'adv_or2blacr2m7fl2c7kql7',
          code: 'NPTRSAJG',
          click_id: null,
          friend: {
            external_id: 'cus_Bob',
            email: 'bob@example.com',
          },
          status: 'approved',
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
          updated_at: '2026-11-23T18:32:21.933161Z',
        },
        reasons: [],
      },
    },
  },
};
