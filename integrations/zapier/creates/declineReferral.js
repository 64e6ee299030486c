'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/referrals/{referral_id}/decline',
  idempotent: true,
  fields: [
    {
      key: 'referralId',
      in: 'path',
      property: 'referral_id',
      type: 'string',
    },
    {
      key: 'reviewer',
      in: 'body',
      property: 'reviewer',
      type: 'string',
    },
    {
      key: 'note',
      in: 'body',
      property: 'note',
      type: 'string',
    },
    {
      key: 'message',
      in: 'body',
      property: 'message',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'declineReferral',
  noun: 'Referral',
  display: {
    label: 'Decline Referral in Review',
    description: 'Decline a referral waiting in the review queue, with a polite reason your workflow can send on.',
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
      {
        key: 'reviewer',
        label: 'Reviewer',
        required: true,
        type: 'string',
        helpText: 'Who decides (name or email); recorded as the actor.',
      },
      {
        key: 'note',
        label: 'Note',
        required: false,
        type: 'string',
        helpText: 'Internal note kept in the history.',
      },
      {
        key: 'message',
        label: 'Message',
        required: false,
        type: 'string',
        helpText: 'Decline only: the polite reason your workflow sends on to the friend.',
      },
      {
        key: 'idempotencyKey',
        label: 'Idempotency Key',
        required: false,
        type: 'string',
        helpText: 'Sent as the Idempotency-Key header: repeats with the same key have one effect. Use an ID from the triggering event..',
      },
    ],
    perform: performCreate(operation),
    sample: {
      id: 'ref_4tsrrgw2e52olsd3q9z5',
      program_id: 'prg_62wz1odzzi6u8mqurit9',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      code: 'NPTRSAJG',
      click_id: null,
      friend: {
        external_id: 'cus_Dan',
        email: 'dan@mailinator.com',
      },
      status: 'rejected',
      reasons: [
        {
          code: 'disposable_email',
          message: 'mailinator.com is a disposable email domain.',
        },
        {
          code: 'declined_in_review',
          message: 'This looks like a duplicate account.',
        },
      ],
      qualification: null,
      hold_until: null,
      approved_at: null,
      review_deadline: null,
      rewards: null,
      created_at: '2026-11-23T18:32:22.008525Z',
      updated_at: '2026-11-23T18:32:22.016137Z',
    },
  },
};
