/** The SDK's errors: MusterError with stable codes (see @muster/common). */
export { ErrorCode, MusterError, isMusterError } from '@muster/common';
