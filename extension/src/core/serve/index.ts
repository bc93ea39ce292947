// Serving: an OpenAI-compatible gateway that applies the allocator to every chat request.
export { createGateway, type Gateway, type GatewayOptions, type LogRecord } from './gateway';
export { parseGatewayPolicy, DEFAULT_REFUSAL, type GatewayPolicy } from './options';
export { lastUserText, withBudget, RequestError } from './messages';
export { SafetySplitter, splitWhole, safetyTokens, type StreamSplit } from './split';
export { GatewayMetrics } from './metrics';
export { readServeRecipe, type ServeRecipe } from './recipe';
