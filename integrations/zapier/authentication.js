'use strict';

/** Custom API-key authentication: the base URL of your referflow and a program API key. */
module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'baseUrl',
      label: 'Base URL',
      required: true,
      type: 'string',
      helpText: 'Where your referflow service runs, e.g. `https://refer.example.com`.',
    },
    {
      key: 'apiKey',
      label: 'API Key',
      required: true,
      type: 'password',
      helpText: 'A program API key (`referflow keys create`).',
    },
  ],
  test: {
    url: '{{bundle.authData.baseUrl}}/v1/program',
  },
  connectionLabel: '{{json.name}}',
};
