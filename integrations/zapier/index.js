'use strict';

// Generated from node_specs/ by `referflow nodes generate`: do not edit by hand.
const { version } = require('./package.json');
const { version: platformVersion } = require('zapier-platform-core');
const authentication = require('./authentication');
const { addApiKey, raiseForStatus } = require('./lib/referflow');
const approveReferral = require('./creates/approveReferral');
const claimReferral = require('./creates/claimReferral');
const createLink = require('./creates/createLink');
const declineReferral = require('./creates/declineReferral');
const getAdvocateByExternalId = require('./searches/getAdvocateByExternalId');
const getGiftCard = require('./searches/getGiftCard');
const getReferral = require('./searches/getReferral');
const issueGiftCard = require('./creates/issueGiftCard');
const listReviews = require('./searches/listReviews');
const qualifyReferral = require('./creates/qualifyReferral');
const redeemGiftCard = require('./creates/redeemGiftCard');
const reverseReferralForFriend = require('./creates/reverseReferralForFriend');
const referralEvent = require('./triggers/referralEvent');

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest: [addApiKey],
  afterResponse: [raiseForStatus],
  triggers: { [referralEvent.key]: referralEvent },
  creates: { [approveReferral.key]: approveReferral, [claimReferral.key]: claimReferral, [createLink.key]: createLink, [declineReferral.key]: declineReferral, [issueGiftCard.key]: issueGiftCard, [qualifyReferral.key]: qualifyReferral, [redeemGiftCard.key]: redeemGiftCard, [reverseReferralForFriend.key]: reverseReferralForFriend },
  searches: { [getAdvocateByExternalId.key]: getAdvocateByExternalId, [getGiftCard.key]: getGiftCard, [getReferral.key]: getReferral, [listReviews.key]: listReviews },
};
