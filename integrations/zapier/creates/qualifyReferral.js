'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/referrals/qualify',
  idempotent: true,
  fields: [
    {
      key: 'referralId',
      in: 'body',
      property: 'referral_id',
      type: 'string',
    },
    {
      key: 'friendExternalId',
      in: 'body',
      property: 'friend_external_id',
      type: 'string',
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
  ],
};

module.exports = {
  key: 'qualifyReferral',
  noun: 'Referral',
  display: {
    label: 'Qualify Referral',
    description: 'Report the friend\'s qualifying purchase: the referral is held for the refund window or approved. The event ID is the dedupe key.',
  },
  operation: {
    inputFields: [
      {
        key: 'referralId',
        label: 'Referral ID',
        required: false,
        type: 'string',
      },
      {
        key: 'friendExternalId',
        label: 'Friend External ID',
        required: false,
        type: 'string',
        helpText: 'Your ID for the friend (or give the Referral ID).',
      },
      {
        key: 'eventId',
        label: 'Event ID',
        required: true,
        type: 'string',
        helpText: 'External event ID, the dedupe key.',
      },
      {
        key: 'eventType',
        label: 'Event Type',
        required: true,
        type: 'string',
      },
      {
        key: 'eventAmount',
        label: 'Event Amount',
        required: true,
        type: 'integer',
        helpText: 'Integer minor units (cents).',
      },
      {
        key: 'eventCurrency',
        label: 'Event Currency',
        required: true,
        type: 'string',
        helpText: 'ISO 4217 currency code, uppercase.',
      },
      {
        key: 'eventOccurredAt',
        label: 'Event Occurred At',
        required: true,
        type: 'datetime',
        helpText: 'RFC 3339 timestamp, UTC.',
        placeholder: '2026-11-20T10:00:00Z',
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
  },
};
