// Canonical textual UUID, any version or variant, either case (as upstream's `string.uuid` rule).
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(value: string): boolean {
  return value.length === 36 && UUID.test(value);
}
