'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/referrals/reverse',
  idempotent: true,
  fields: [
    {
      key: 'reason',
      in: 'body',
      property: 'reason',
      type: 'options',
    },
    {
      key: 'eventId',
      in: 'body',
      property: 'event.id',
      type: 'string',
    },
    {
      key: 'eventType',
      in: 'body',
      property: 'event.type',
      type: 'string',
    },
    {
      key: 'eventAmount',
      in: 'body',
      property: 'event.amount',
      type: 'integer',
    },
    {
      key: 'eventCurrency',
      in: 'body',
      property: 'event.currency',
      type: 'string',
    },
    {
      key: 'eventOccurredAt',
      in: 'body',
      property: 'event.occurred_at',
      type: 'datetime',
    },
    {
      key: 'note',
      in: 'body',
      property: 'note',
      type: 'string',
    },
    {
      key: 'friendExternalId',
      in: 'body',
      property: 'friend_external_id',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'reverseReferralForFriend',
  noun: 'Referral',
  display: {
    label: 'Reverse Referral',
    description: 'Reverse a friend\'s referral after a refund or chargeback: unredeemed reward balance is voided and the loss recorded.',
  },
  operation: {
    inputFields: [
      {
        key: 'reason',
        label: 'Reason',
        required: true,
        type: 'string',
        choices: [
          {
            value: 'refund',
            label: 'Refund',
            sample: 'refund',
          },
          {
            value: 'chargeback',
            label: 'Chargeback',
            sample: 'chargeback',
          },
          {
            value: 'fraud',
            label: 'Fraud',
            sample: 'fraud',
          },
          {
            value: 'other',
            label: 'Other',
            sample: 'other',
          },
        ],
      },
      {
        key: 'eventId',
        label: 'Event ID',
        required: false,
        type: 'string',
      },
      {
        key: 'eventType',
        label: 'Event Type',
        required: false,
        type: 'string',
      },
      {
        key: 'eventAmount',
        label: 'Event Amount',
        required: false,
        type: 'integer',
        helpText: 'Integer minor units (cents).',
      },
      {
        key: 'eventCurrency',
        label: 'Event Currency',
        required: false,
        type: 'string',
        helpText: 'ISO 4217 currency code, uppercase.',
      },
      {
        key: 'eventOccurredAt',
        label: 'Event Occurred At',
        required: false,
        type: 'datetime',
        helpText: 'RFC 3339 timestamp, UTC.',
        placeholder: '2026-11-20T10:00:00Z',
      },
      {
        key: 'note',
        label: 'Note',
        required: false,
        type: 'string',
      },
      {
        key: 'friendExternalId',
        label: 'Friend External ID',
        required: true,
        type: 'string',
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
      status: 'reversed',
      reasons: [
        {
          code: 'disposable_email',
          message: 'mailinator.com is a disposable email domain.',
        },
        {
          code: 'refunded_in_hold',
          message: 'The friend\'s payment was refunded inside the hold period.',
        },
      ],
      qualification: null,
      hold_until: null,
      approved_at: null,
      review_deadline: null,
      rewards: null,
      created_at: '2026-11-23T18:32:21.991110Z',
      updated_at: '2026-11-23T18:32:22.023338Z',
    },
  },
};
