// `npm run lint` (`n8n-node lint`): the ESLint rules of @n8n/node-cli as n8n ships them, unchanged
// (n8n's community-node rules, eslint-plugin-n8n-nodes-base, typescript-eslint and import checks).
import { config } from '@n8n/node-cli/eslint';

export default config;
