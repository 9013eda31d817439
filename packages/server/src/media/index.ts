export { DATA_PLANES, type DataPlane, parseDataPlane } from "./data-plane.js";
export {
  MEDIA_LEG_STATES,
  MediaLeg,
  type MediaLegCounters,
  type MediaLegQuality,
  type MediaLegState,
} from "./media-leg.js";
export { type CreateLegOptions, type MediaConfig, MediaRelay, type MediaRelayOptions } from "./media-relay.js";
export { assignSlots } from "./speaker-selection.js";
