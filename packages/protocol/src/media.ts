import { z } from "zod";

/**
 * A relay (TURN) server a client may use to reach the media relay when its network blocks UDP,
 * in the shape of WebRTC's `RTCIceServer`. The credentials are short-lived and this user's own
 * (coturn's REST-API scheme); they name no other client.
 */
export const IceServer = z.object({
  urls: z.array(z.string()),
  username: z.string(),
  credential: z.string(),
});
export type IceServer = z.infer<typeof IceServer>;
