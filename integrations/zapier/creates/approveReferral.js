'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/referrals/{referral_id}/approve',
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
  key: 'approveReferral',
  noun: 'Referral',
  display: {
    label: 'Approve Referral in Review',
    description: 'Approve a referral waiting in the review queue; it resumes where its qualification puts it.',
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
      id: 'ref_odpfxmbxcu3zk57zzso6',
      program_id: 'prg_62wz1odzzi6u8mqurit9',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      code: 'NPTRSAJG',
      click_id: null,
      friend: {
        external_id: 'cus_Carl',
        email: 'carl@mailinator.com',
      },
      status: 'pending',
      reasons: [
        {
          code: 'disposable_email',
          message: 'mailinator.com is a disposable email domain.',
        },
      ],
      qualification: null,
      hold_until: null,
      approved_at: null,
      review_deadline: null,
      rewards: null,
      created_at: '2026-11-23T18:32:21.991110Z',
      updated_at: '2026-11-23T18:32:22.003397Z',
    },
  },
};
