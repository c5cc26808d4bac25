// Where a load test may send its traffic: loopback, and the test hosts' addresses the caller
// names. Checked before any socket exists, on the address as given: a host name is refused
// rather than resolved, since a name can be made to resolve anywhere.
import { BlockList, isIP } from 'node:net';
import { InvalidInputError, type Issue } from '../errors.js';

export class LoadTargetPolicy {
  private readonly allowed = new BlockList();

  /** `allowedAddresses`: IP addresses of test hosts the caller's own run created. */
  constructor(allowedAddresses: readonly string[] = []) {
    this.allowed.addSubnet('127.0.0.0', 8, 'ipv4');
    this.allowed.addAddress('::1', 'ipv6');
    const issues: Issue[] = [];
    allowedAddresses.forEach((address, i) => {
      const family = isIP(address);
      if (family === 0)
        issues.push({ path: `allowedAddresses[${i}]`, message: `"${address}" is not an IP address` });
      else this.allowed.addAddress(address, family === 4 ? 'ipv4' : 'ipv6');
    });
    if (issues.length)
      throw new InvalidInputError(
        `allowed load-test addresses refused: ${issues.map((i) => i.message).join('; ')}`,
        issues,
      );
  }

  /** Throws, naming `field`, unless the address is loopback or one of the allowed addresses. */
  check(address: string, field = 'address'): void {
    const family = isIP(address);
    if (family === 0)
      throw new InvalidInputError(
        `load-test target ${JSON.stringify(address)} is not an IP address; a load test goes only to loopback or allowed test-host addresses`,
        [{ path: field, message: 'not an IP address' }],
      );
    // BlockList also matches an IPv4-mapped IPv6 address (::ffff:127.0.0.1) against IPv4 rules.
    if (!this.allowed.check(address, family === 4 ? 'ipv4' : 'ipv6'))
      throw new InvalidInputError(
        `load-test target ${address} is neither loopback nor an allowed test-host address; no request was sent`,
        [{ path: field, message: 'not loopback nor an allowed test-host address' }],
      );
  }
}
