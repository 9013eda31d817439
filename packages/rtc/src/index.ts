// The werift classes and helpers Parley's packages, bench and tests use: they reach werift only
// through this package.
export {
  DtlsSocket,
  MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpSender,
  RtpHeader,
  RtpPacket,
  useAudioLevelIndication,
  useOPUS,
  usePCMU,
  useVP8,
} from "werift";
export {
  loadNativePlane,
  NATIVE_PLANE_FILE,
  type NativeLeg,
  type NativeLegOptions,
  NativeLegStat,
  type NativePlane,
  type NativePlaneModule,
  type NativePlaneOptions,
  type NativeSrtpKeys,
  slotStat,
} from "./native-plane.js";
export { createPeer, type PeerOptions } from "./peer.js";
export { ReceptionStats } from "./reception-stats.js";
export {
  packetIndex,
  REPLAY_WINDOW_SIZE,
  type ReceivedStream,
  ReplayVerdict,
  ReplayWindow,
  receivedStream,
} from "./replay-window.js";
export { LOSS_RISE, REPORT_INTERVAL_MS, ReportPacing } from "./report-pacing.js";
export {
  REPORT_CHECK_MS,
  type RtcpReport,
  receiverReport,
  SenderReports,
  sendReceiverReport,
  sendRtcp,
  stopWeriftReceiverReports,
} from "./rtcp-reports.js";
export {
  AUDIO_LEVEL_EXTENSION_BYTES,
  audioLevelOf,
  RTP_FIXED_HEADER_BYTES,
  rtpHasPadding,
  rtpHeaderLength,
  rtpMarker,
  rtpSequenceNumber,
  rtpSsrc,
  rtpTimestamp,
  writeAudioLevelExtension,
  writeRtpHeader,
} from "./rtp-header.js";
export {
  AUDIO_LEVEL_URI,
  declaredSsrcs,
  declaresSsrc,
  extensionId,
  mediaSectionCount,
  opusAnswerParameters,
  type SdpCandidate,
  sdpCandidates,
  sdpLines,
} from "./sdp.js";
export {
  AesGcm,
  cmCounter,
  ecbCipher,
  gcmIv,
  isSupportedProfile,
  PROFILE_AEAD_AES_128_GCM,
  PROFILE_AES128_CM_SHA1_80,
  RocTracker,
  type SrtpKeys,
  SrtpReceiver,
  SrtpSender,
  tagLength,
} from "./srtp.js";
export {
  answerConsentCheck,
  type ConsentAnswer,
  type ConsentCredentials,
  consentCredentials,
  countAnsweredCheck,
} from "./stun-consent.js";
export { type UdpHandle, udpHandleOf } from "./udp-handle.js";
export { applyWeriftFixes } from "./werift-fixes.js";
export {
  type CandidatePairLike,
  type DatagramListener,
  expireConsent,
  type IceConnectionLike,
  iceConnectionOf,
  iceSocketsOf,
  type NominatedPath,
  nominatedPath,
  PAIR_SUCCEEDED,
  type ReceiverReportState,
  receiverReportState,
  restrictSrtpProfiles,
  resumeConsent,
  type SenderReportState,
  type SrtpContextLike,
  type SrtpSessionLike,
  type StunProtocolLike,
  senderReportState,
  srtpProfileOf,
  srtpSessionOf,
  takeOverConsent,
  tapDatagrams,
  type UdpTransportLike,
} from "./werift-internals.js";
