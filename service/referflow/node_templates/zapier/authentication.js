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
      helpText: 'Where your referflow service runs, e.g. `https://refer.example.com` (ask whoever runs it).',
    },
    {
      key: 'apiKey',
      label: 'API Key',
      required: true,
      type: 'password',
      helpText: 'A program API key (`rfk_...`): on the referflow server run `referflow keys create --program PROGRAM_ID` and paste the key it prints. Each program has its own keys.',
    },
  ],
  test: {
    url: '{{bundle.authData.baseUrl}}/v1/program',
  },
  connectionLabel: '{{json.name}}',
};
