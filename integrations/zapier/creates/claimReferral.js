'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/referrals/claim',
  idempotent: true,
  fields: [
    {
      key: 'code',
      in: 'body',
      property: 'code',
      type: 'string',
    },
    {
      key: 'clickId',
      in: 'body',
      property: 'click_id',
      type: 'string',
    },
    {
      key: 'friendExternalId',
      in: 'body',
      property: 'friend.external_id',
      type: 'string',
    },
    {
      key: 'friendEmail',
      in: 'body',
      property: 'friend.email',
      type: 'string',
    },
    {
      key: 'contextIp',
      in: 'body',
      property: 'context.ip',
      type: 'string',
    },
    {
      key: 'contextUserAgent',
      in: 'body',
      property: 'context.user_agent',
      type: 'string',
    },
    {
      key: 'contextPaymentFingerprint',
      in: 'body',
      property: 'context.payment_fingerprint',
      type: 'string',
    },
    {
      key: 'contextDeviceId',
      in: 'body',
      property: 'context.device_id',
      type: 'string',
    },
    {
      key: 'contextExistingCustomer',
      in: 'body',
      property: 'context.existing_customer',
      type: 'boolean',
    },
    {
      key: 'contextPurchasedAt',
      in: 'body',
      property: 'context.purchased_at',
      type: 'datetime',
    },
  ],
};

module.exports = {
  key: 'claimReferral',
  noun: 'Referral',
  display: {
    label: 'Claim Referral',
    description: 'Record that a friend signed up or bought with an advocate\'s code (or click ID). Fraud rules run here; the first claim wins.',
  },
  operation: {
    inputFields: [
      {
        key: 'code',
        label: 'Referral Code',
        required: false,
        type: 'string',
        helpText: 'The advocate\'s referral code (or give a Click ID under Additional Fields).',
      },
      {
        key: 'clickId',
        label: 'Click ID',
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
        key: 'friendEmail',
        label: 'Friend Email',
        required: true,
        type: 'string',
      },
      {
        key: 'contextIp',
        label: 'IP Address',
        required: false,
        type: 'string',
      },
      {
        key: 'contextUserAgent',
        label: 'User Agent',
        required: false,
        type: 'string',
      },
      {
        key: 'contextPaymentFingerprint',
        label: 'Payment Fingerprint',
        required: false,
        type: 'string',
      },
      {
        key: 'contextDeviceId',
        label: 'Device ID',
        required: false,
        type: 'string',
      },
      {
        key: 'contextExistingCustomer',
        label: 'Existing Customer',
        required: false,
        type: 'boolean',
      },
      {
        key: 'contextPurchasedAt',
        label: 'Purchased At',
        required: false,
        type: 'datetime',
        helpText: 'When the friend already bought, for a claim made after checkout (late claim).',
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
      status: 'pending',
      reasons: [],
      qualification: null,
      hold_until: null,
      approved_at: null,
      review_deadline: null,
      rewards: null,
      created_at: '2026-11-23T18:32:21.911374Z',
      updated_at: '2026-11-23T18:32:21.911374Z',
      created: true,
    },
  },
};
