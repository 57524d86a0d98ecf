// What `npm run demo` prints once everything is up: where things run, how slow the simulated
// services are made, the two tokens, and one ready-to-paste curl line per route.

/** Shortened from upstreams.md's realistic times so that every route can be tried in a minute. */
export const DEMO_LATENCY_MS: Record<string, number> = {
  '/avatar/get_avatars': 300,
  '/avatar/preview': 150,
  '/avatar/add': 3000,
  '/avatar/delete': 300,
  '/avatar/start': 2000,
  '/tts/models': 50,
  '/offer': 200,
};

/** The avatar the add and delete lines create and remove, and one the simulated service has. */
const NEW_AVATAR = 'demo_avatar';
const EXISTING_AVATAR = 'bob_math';

// An offer as a browser's RTCPeerConnection writes it (two media sections), cut to what the
// simulated signalling service reads.
const OFFER_JSON = JSON.stringify({
  sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n',
  type: 'offer',
});

export interface DemoSetup {
  gatewayUrl: string;
  upstreams: { avatar: string; tts: string; webrtc: string };
  tutorToken: string;
  studentToken: string;
  /** The small generated video the add line uploads. */
  videoPath: string;
  /** METRICS_TOKEN, when the .env sets one. */
  metricsToken?: string;
}

const seconds = (ms: number) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);
const latency = (path: string) => seconds(DEMO_LATENCY_MS[path]);
const bearer = (variable: 'TUTOR' | 'STUDENT') => `-H "Authorization: Bearer $${variable}"`;

/** The curl lines, one per route, each after a comment saying what it shows. */
export function curlLines(setup: DemoSetup): Array<[comment: string, command: string]> {
  const api = `${setup.gatewayUrl}/api`;
  const metricsAuth = setup.metricsToken ? ` -H "Authorization: Bearer ${setup.metricsToken}"` : '';
  return [
    ['the avatars (any logged-in user)', `curl -sS ${api}/avatar/list ${bearer('STUDENT')}`],
    [`an avatar's first frame, saved as preview.png`, `curl -sS ${api}/avatar/preview ${bearer('STUDENT')} -F avatar_name=${EXISTING_AVATAR} -o preview.png -w '%{http_code} %{content_type} %{size_download} bytes\\n'`],
    ['the TTS models', `curl -sS ${api}/tts/models ${bearer('STUDENT')}`],
    ['start an avatar (any logged-in user)', `curl -sS ${api}/avatar/start ${bearer('STUDENT')} -F avatar_name=${EXISTING_AVATAR}`],
    ['create an avatar from a video (tutor only), streamed through', `curl -sS ${api}/avatar/add ${bearer('TUTOR')} -F name=${NEW_AVATAR} -F prompt_face=@${setup.videoPath}`],
    ['a student may not delete one: 403', `curl -sS ${api}/avatar/delete ${bearer('STUDENT')} -F name=${NEW_AVATAR}`],
    ['delete it (tutor only)', `curl -sS ${api}/avatar/delete ${bearer('TUTOR')} -F name=${NEW_AVATAR}`],
    ['a WebRTC offer to the signalling service (no token needed)', `curl -sS ${api}/webrtc/offer -H 'Content-Type: application/json' -d '${OFFER_JSON}'`],
    ['liveness', `curl -sS ${api}/health`],
    ['each service behind the gateway, probed', `curl -sS ${api}/health/detailed`],
    ['Prometheus metrics', `curl -sS ${setup.gatewayUrl}/metrics${metricsAuth}`],
  ];
}

export function demoGuide(setup: DemoSetup): string {
  return [
    '',
    'avatar-gateway demo: the gateway in front of simulated avatar, TTS and WebRTC services',
    '',
    `Gateway:      ${setup.gatewayUrl}`,
    `Health page:  ${setup.gatewayUrl}/api/health/detailed`,
    `Avatar:       ${setup.upstreams.avatar} (simulated: list ${latency('/avatar/get_avatars')}, preview ${latency('/avatar/preview')}, add ${latency('/avatar/add')}, delete ${latency('/avatar/delete')}, start ${latency('/avatar/start')})`,
    `TTS:          ${setup.upstreams.tts} (simulated: models ${latency('/tts/models')})`,
    `WebRTC:       ${setup.upstreams.webrtc} (simulated: offer ${latency('/offer')})`,
    'A real avatar service takes up to 3 s to list, 5 to 60 s to start an avatar and 1 to 15 minutes',
    'to create one; the simulated one is quicker so that every route can be tried in a minute.',
    '',
    'Tokens from `npm run token`, signed with the JWT_SECRET_KEY the gateway uses, valid 5 hours.',
    'Paste these two lines into your shell first:',
    '',
    `TUTOR='${setup.tutorToken}'`,
    `STUDENT='${setup.studentToken}'`,
    '',
    'Then try every route:',
    '',
    ...curlLines(setup).flatMap(([comment, command]) => [`# ${comment}`, command]),
    '',
    'The gateway logs each request below. Ctrl-C stops the gateway and the simulated services.',
    '',
  ].join('\n');
}
