'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { performCreate } = require('../lib/referflow');

const operation = {
  method: 'POST',
  path: '/v1/gift-cards',
  idempotent: true,
  fields: [
    {
      key: 'referralId',
      in: 'body',
      property: 'referral_id',
      type: 'string',
    },
    {
      key: 'advocateId',
      in: 'body',
      property: 'advocate_id',
      type: 'string',
    },
    {
      key: 'side',
      in: 'body',
      property: 'side',
      type: 'options',
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
      key: 'note',
      in: 'body',
      property: 'note',
      type: 'string',
    },
  ],
};

module.exports = {
  key: 'issueGiftCard',
  noun: 'Gift Card',
  display: {
    label: 'Issue Gift Card',
    description: 'Issue the gift cards an approved referral earns (each side exactly once), or a goodwill card to an advocate.',
  },
  operation: {
    inputFields: [
      {
        key: 'referralId',
        label: 'Referral ID',
        required: false,
        type: 'string',
        helpText: 'The approved referral (or give Advocate ID and Amount for a goodwill card).',
      },
      {
        key: 'advocateId',
        label: 'Advocate ID',
        required: false,
        type: 'string',
      },
      {
        key: 'side',
        label: 'Side',
        required: false,
        type: 'string',
        choices: [
          {
            value: 'advocate',
            label: 'Advocate',
            sample: 'advocate',
          },
          {
            value: 'friend',
            label: 'Friend',
            sample: 'friend',
          },
          {
            value: 'both',
            label: 'Both',
            sample: 'both',
          },
        ],
      },
      {
        key: 'amount',
        label: 'Amount',
        required: false,
        type: 'integer',
        helpText: 'Integer minor units (cents).',
      },
      {
        key: 'currency',
        label: 'Currency',
        required: false,
        type: 'string',
        helpText: 'ISO 4217 currency code, uppercase.',
      },
      {
        key: 'note',
        label: 'Note',
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
      balance: 2500,
      currency: 'EUR',
      status: 'active',
      expires_at: '2027-11-23T18:32:21.945494Z',
      side: 'advocate',
      referral_id: 'ref_by9h34ufi7a235fonak1',
      advocate_id: 'adv_or2blacr2m7fl2c7kql7',
      created_at: '2026-11-23T18:32:21.945494Z',
      cards: [
        {
          id: 'gc_n16o0mi7o6ijao389s8y',
          code: '98HD8W855B3WTQM2',
          amount: 2500,
          balance: 2500,
          currency: 'EUR',
          status: 'active',
          expires_at: '2027-11-23T18:32:21.945494Z',
          side: 'advocate',
          referral_id: 'ref_by9h34ufi7a235fonak1',
          advocate_id: 'adv_or2blacr2m7fl2c7kql7',
          created_at: '2026-11-23T18:32:21.945494Z',
        },
        {
          id: 'gc_642zv5bcnomeo3q7axu7',
          code: 'TN5RB54E77TDCZC9',
          amount: 1000,
          balance: 1000,
          currency: 'EUR',
          status: 'active',
          expires_at: '2027-11-23T18:32:21.952245Z',
          side: 'friend',
          referral_id: 'ref_by9h34ufi7a235fonak1',
          advocate_id: null,
          created_at: '2026-11-23T18:32:21.952245Z',
        },
      ],
    },
  },
};
