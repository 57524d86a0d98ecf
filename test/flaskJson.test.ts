// services/flaskJson.ts against Flask's jsonify. Every expected string below is what Python's
// json.dumps(obj, sort_keys=True, separators=(',', ':')) + '\n' (Flask 3.1's jsonify) writes.
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { flaskJson, sendJson } from '../services/flaskJson.js';
import { send } from './helpers/http.js';

const avatar = (name: string) => ({ avatar_model: '', clone: false, description: `Avatar: ${name}`, status: 'active', timbre: '', tts_model: '' });

describe('flaskJson (Flask jsonify bytes)', () => {
  describe('examples from api.md', () => {
    it('an error body', () => {
      expect(flaskJson({ msg: 'Permission denied' })).to.equal('{"msg":"Permission denied"}\n');
    });

    it('the avatar list comes back in sorted key order (Zoe, avatar_1, bob_math), nested keys sorted too', () => {
      const upstreamOrder = { bob_math: avatar('bob_math'), avatar_1: avatar('avatar_1'), Zoe: avatar('Zoe') };
      expect(flaskJson(upstreamOrder)).to.equal(
        '{"Zoe":{"avatar_model":"","clone":false,"description":"Avatar: Zoe","status":"active","timbre":"","tts_model":""},'
        + '"avatar_1":{"avatar_model":"","clone":false,"description":"Avatar: avatar_1","status":"active","timbre":"","tts_model":""},'
        + '"bob_math":{"avatar_model":"","clone":false,"description":"Avatar: bob_math","status":"active","timbre":"","tts_model":""}}\n',
      );
    });

    it('health, 404 and failure bodies', () => {
      expect(flaskJson({ status: 'healthy', service: 'avatar-gateway' })).to.equal('{"service":"avatar-gateway","status":"healthy"}\n');
      expect(flaskJson({ path: '/api/nope', msg: 'Resource not found' })).to.equal('{"msg":"Resource not found","path":"/api/nope"}\n');
      expect(flaskJson({ msg: 'Avatar creation failed', detail: { detail: [{ type: 'missing', msg: 'Field required', loc: ['body', 'name'] }] } }))
        .to.equal('{"detail":{"detail":[{"loc":["body","name"],"msg":"Field required","type":"missing"}]},"msg":"Avatar creation failed"}\n');
    });

    it('a TTS model entry, nulls included', () => {
      const model = { timbres: null, status: 'active', license: 'MIT', full_name: 'CosyVoice2', cur_timbre: null, clone: true };
      expect(flaskJson({ cosyvoice: model })).to.equal(
        '{"cosyvoice":{"clone":true,"cur_timbre":null,"full_name":"CosyVoice2","license":"MIT","status":"active","timbres":null}}\n',
      );
    });
  });

  describe('escapes like ensure_ascii', () => {
    it('non-ASCII as \\uXXXX, characters outside the BMP as a surrogate pair, in values and keys', () => {
      expect(flaskJson({ msg: '头像 café 😀', é: 1 })).to.equal(String.raw`{"msg":"\u5934\u50cf caf\u00e9 \ud83d\ude00","\u00e9":1}` + '\n');
    });

    it('control characters, DEL, U+2028, quotes and backslashes as Python writes them', () => {
      expect(flaskJson({ s: 'tab\there\nnl \u0000 \u001f \u007f \u2028 "q" \\ /' }))
        .to.equal(String.raw`{"s":"tab\there\nnl \u0000 \u001f \u007f \u2028 \"q\" \\ /"}` + '\n');
    });

    it('the output is pure ASCII', () => {
      expect(flaskJson({ 名前: 'アバター', emoji: '🎓👩‍🏫' })).to.match(/^[\x20-\x7e]*\n$/);
    });
  });

  describe('sorts keys by code point, whatever JavaScript objects do', () => {
    it('integer-like keys sort as strings ("10" before "9"), and a "__proto__" key is kept', () => {
      const value = JSON.parse('{"9":2,"10":1,"b":{"z":[{"y":1,"x":2}],"a":null},"__proto__":{"k":true}}');
      expect(flaskJson(value)).to.equal('{"10":1,"9":2,"__proto__":{"k":true},"b":{"a":null,"z":[{"x":2,"y":1}]}}\n');
    });

    it('a key outside the BMP sorts after U+FF21 (Python compares code points, not UTF-16 units)', () => {
      expect(flaskJson({ '😀': 2, 'Ａ': 1 })).to.equal(String.raw`{"\uff21":1,"\ud83d\ude00":2}` + '\n');
    });

    it('drops undefined members and writes undefined array items as null, like JSON.stringify', () => {
      expect(flaskJson({ b: undefined, a: [undefined, 1] })).to.equal('{"a":[null,1]}\n');
    });
  });

  it('sendJson answers with Content-Type application/json (no charset) and exactly those bytes', async () => {
    const app = express();
    app.get('/', (_req, res) => sendJson(res, 403, { msg: 'Permission denied', é: true }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const res = await send(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(res.status).to.equal(403);
      expect(res.headers['content-type']).to.equal('application/json');
      expect(res.body).to.equal(String.raw`{"msg":"Permission denied","\u00e9":true}` + '\n');
      expect(res.headers['content-length']).to.equal(String(res.body.length));
    } finally {
      server.close();
    }
  });
});
