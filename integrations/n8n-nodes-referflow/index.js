// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
// n8n loads the nodes and credentials listed in package.json.
module.exports = {};
