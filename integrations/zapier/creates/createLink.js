'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/links',
  idempotent: true,
  fields: [
    {
      key: 'advocateExternalId',
      in: 'body',
      property: 'advocate.external_id',
      type: 'string',
    },
    {
      key: 'advocateEmail',
      in: 'body',
      property: 'advocate.email',
      type: 'string',
    },
    {
      key: 'advocateName',
      in: 'body',
      property: 'advocate.name',
      type: 'string',
    },
    {
      key: 'vanityCode',
      in: 'body',
      property: 'vanity_code',
      type: 'string',
    },
    {
      key: 'contextIp',
      in: 'body',
      property: 'context.ip',
      type: 'string',
    },
    {
      key: 'contextDeviceId',
      in: 'body',
      property: 'context.device_id',
      type: 'string',
    },
    {
      key: 'contextPaymentFingerprint',
      in: 'body',
      property: 'context.payment_fingerprint',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'createLink',
  noun: 'Link',
  display: {
    label: 'Create Referral Link',
    description: 'Create (or return) an advocate\'s personal referral code and share link. The same advocate always gets the same link.',
  },
  operation: {
    inputFields: [
      {
        key: 'advocateExternalId',
        label: 'Advocate External ID',
        required: true,
        type: 'string',
        helpText: 'Your ID for the advocate, such as the Stripe or Shopify customer ID.',
      },
      {
        key: 'advocateEmail',
        label: 'Advocate Email',
        required: true,
        type: 'string',
      },
      {
        key: 'advocateName',
        label: 'Advocate Name',
        required: false,
        type: 'string',
      },
      {
        key: 'vanityCode',
        label: 'Vanity Code',
        required: false,
        type: 'string',
      },
      {
        key: 'contextIp',
        label: 'IP Address',
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
        key: 'contextPaymentFingerprint',
        label: 'Payment Fingerprint',
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
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      code: 'NPTRSAJG',
      url: 'https://refer.example.com/r/NPTRSAJG',
      created: true,
    },
  },
};
