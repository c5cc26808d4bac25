// The platform, instance size and base image, where the host itself can tell: EC2 and Azure
// VMs name themselves in DMI, and cloud-init leaves its instance data (region, zone, instance
// type, image) in /run/cloud-init/instance-data.json. No metadata service is called: a capture
// must not depend on link-local endpoints being reachable.
import type { z } from 'zod';
import type { BaseImage, Instance } from '../../profile/schema.js';
import { keyValues, type ParseContext } from './context.js';

type InstanceInput = z.input<typeof Instance>;
type BaseImageInput = z.input<typeof BaseImage>;

const AZURE_ASSET_TAG = '7783-7084-3265-9085-8269-3286-77';
const EC2_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

const get = (value: unknown, ...path: string[]): unknown => {
  let node = value;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
};
const str = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

export function parseInstance(ctx: ParseContext): { instance?: InstanceInput; baseImage?: BaseImageInput } {
  const section = ctx.section('cloud');
  const dmi = keyValues(section?.parts.find((p) => p.header === '')?.text ?? '');
  const cloudInitText = section?.parts.find((p) => p.header === 'cloud-init')?.text;
  let data: unknown;
  if (cloudInitText) {
    try {
      data = JSON.parse(cloudInitText);
    } catch {
      ctx.unknown('cloud', 'cloud-init instance data is not valid JSON (cut at 256 KiB?)');
    }
  }
  const cloud = str(get(data, 'v1', 'cloud_name'));
  const region = str(get(data, 'v1', 'region'));
  const zone = str(get(data, 'v1', 'availability_zone'));
  const vendor = dmi.get('dmi.sys_vendor') ?? '';

  if (cloud === 'aws' || vendor === 'Amazon EC2') {
    const product = dmi.get('dmi.product_name') ?? '';
    const size =
      str(get(data, 'ds', 'meta_data', 'instance-type')) ?? (EC2_TYPE.test(product) ? product : undefined);
    const ami = str(get(data, 'ds', 'meta_data', 'ami-id'));
    if (!size) ctx.unknown('cloud', 'an EC2 instance whose type is not in DMI or cloud-init data');
    return {
      ...(size
        ? { instance: { platform: 'aws', size, ...(region ? { region } : {}), ...(zone ? { zone } : {}) } }
        : {}),
      ...(ami ? { baseImage: { ref: ami, platform: 'aws' } } : {}),
    };
  }

  if (cloud === 'azure' || dmi.get('dmi.chassis_asset_tag') === AZURE_ASSET_TAG) {
    const compute = get(data, 'ds', 'meta_data', 'imds', 'compute');
    const size = str(get(compute, 'vmSize'));
    const location = region ?? str(get(compute, 'location'));
    const azZone = zone ?? str(get(compute, 'zone'));
    const image = get(compute, 'storageProfile', 'imageReference');
    const urn = ['publisher', 'offer', 'sku', 'version'].map((k) => str(get(image, k)));
    const ref = urn.every((p) => p !== undefined) ? urn.join(':') : str(get(image, 'id'));
    if (!size)
      ctx.unknown(
        'cloud',
        'an Azure VM whose size is not in cloud-init data (the size is only in the metadata service)',
      );
    return {
      ...(size
        ? {
            instance: {
              platform: 'azure',
              size,
              ...(location ? { region: location } : {}),
              ...(azZone ? { zone: azZone } : {}),
            },
          }
        : {}),
      ...(ref ? { baseImage: { ref, platform: 'azure' } } : {}),
    };
  }

  ctx.unknown(
    'cloud',
    'not an EC2 or Azure VM as far as DMI and cloud-init tell: the instance and base image come from the platform adaptor',
  );
  return {};
}
