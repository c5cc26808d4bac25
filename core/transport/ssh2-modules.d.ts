// The two modules of ssh2 the SSH transport loads, its client and SFTP's status codes, rather
// than its index, which loads its server, key generator and HTTP agents as well.
declare module 'ssh2/lib/client.js' {
  const client: typeof import('ssh2').Client;
  export default client;
}
declare module 'ssh2/lib/protocol/SFTP.js' {
  const sftp: { readonly STATUS_CODE: typeof import('ssh2').utils.sftp.STATUS_CODE };
  export default sftp;
}
