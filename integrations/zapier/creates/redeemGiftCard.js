'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/gift-cards/{code}/redeem',
  idempotent: true,
  fields: [
    {
      key: 'code',
      in: 'path',
      property: 'code',
      type: 'string',
    },
    {
      key: 'amount',
      in: 'body',
      property: 'amount',
      type: 'integer',
    },
    {
      key: 'currency',
      in: 'body',
      property: 'currency',
      type: 'string',
    },
    {
      key: 'reference',
      in: 'body',
      property: 'reference',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'redeemGiftCard',
  noun: 'Gift Card',
  display: {
    label: 'Redeem Gift Card',
    description: 'Spend part or all of a gift card\'s balance; it can never be overdrawn.',
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
      {
        key: 'amount',
        label: 'Amount',
        required: true,
        type: 'integer',
        helpText: 'Integer minor units (cents).',
      },
      {
        key: 'currency',
        label: 'Currency',
        required: true,
        type: 'string',
        helpText: 'ISO 4217 currency code, uppercase.',
      },
      {
        key: 'reference',
        label: 'Reference',
        required: false,
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
    },
  },
};
