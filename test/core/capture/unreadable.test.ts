import { describe, expect, it } from 'vitest';
import { unreadableInTar } from '../../../core/capture/operation.js';

describe('unreadableInTar', () => {
  it('names the files GNU tar and BusyBox tar could not read for want of permission', () => {
    expect(
      unreadableInTar(
        [
          'tar: etc/shadow: Cannot open: Permission denied',
          'tar: etc/ssl/private: Cannot open: Permission denied',
          "tar: can't open 'etc/sudoers': Permission denied",
          'tar: Exiting with failure status due to previous errors',
          '',
        ].join('\n'),
      ),
    ).toEqual({ paths: ['/etc/shadow', '/etc/ssl/private', '/etc/sudoers'], onlyThese: true });
  });

  it('says when tar complained of anything else, so that the capture still fails', () => {
    const r = unreadableInTar(
      'tar: etc/shadow: Cannot open: Permission denied\ntar: -: Cannot write: Broken pipe\n',
    );
    expect(r).toEqual({ paths: ['/etc/shadow'], onlyThese: false });
    expect(unreadableInTar('')).toEqual({ paths: [], onlyThese: true });
  });
});
