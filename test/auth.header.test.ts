// readBearerToken on its own: Flask-JWT-Extended's header parsing, down to Python's idea of
// whitespace (str.split and re's \s count \xa0, \x1c-\x1f and \x85 as spaces; JavaScript's \s
// does not count all of them).
import { expect } from 'chai';
import { readBearerToken } from '../services/authHeader.js';
import { TokenRefused, type Refusal } from '../services/tokenRefusal.js';

function refusalOf(header: string | undefined): Refusal | string {
  try {
    return `token ${readBearerToken(header)}`;
  } catch (error) {
    if (error instanceof TokenRefused) return error.refusal;
    throw error;
  }
}

describe('auth: the Authorization header reader', () => {
  const cases: Array<[string | undefined, Refusal | string]> = [
    [undefined, 'missing_header'],
    ['', 'missing_header'],
    [' \t ', 'missing_header'],
    [',', 'missing_header'],
    ['Bearer t', 'token t'],
    ['Bearer\xa0t', 'token t'],
    ['Bearer\x1ct', 'token t'],
    ['Bearer\x85t', 'token t'],
    ['\xa0Bearer t\xa0', 'token t'],
    ['Basic x,\xa0Bearer t', 'token t'],
    ['Basic x,\x0cBearer t', 'token t'],
    [',Bearer t,', 'token t'],
    ['Bearer t, Bearer u', 'missing_bearer'],
    ['Bearer\u200bt', 'missing_bearer'],
    ['bearer t', 'missing_bearer'],
    ['Bearer t u', 'bad_header'],
    ['Bearer', 'bad_header'],
    [',\xa0,Bearer t', 'bad_header'],
    ['Token x, , Bearer t', 'bad_header'],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} -> ${expected}`, () => expect(refusalOf(header)).to.equal(expected));
  }
});
