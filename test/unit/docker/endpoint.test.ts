import { describe, expect, it } from 'vitest';
import { dockerEndpoint, type DockerEndpoint, type DockerEnvironment } from '../../../src/docker/endpoint.js';

const table: Array<{ env: DockerEnvironment; expect?: DockerEndpoint; fail?: RegExp }> = [
  { env: {}, expect: { transport: 'unix', path: '/var/run/docker.sock' } },
  { env: { DOCKER_HOST: '' }, expect: { transport: 'unix', path: '/var/run/docker.sock' } },
  { env: { DOCKER_HOST: 'unix:///tmp/lab/docker.sock' }, expect: { transport: 'unix', path: '/tmp/lab/docker.sock' } },
  { env: { DOCKER_HOST: 'unix://' }, expect: { transport: 'unix', path: '/var/run/docker.sock' } },
  // A Unix socket is never TLS, whatever the rest of the environment says.
  { env: { DOCKER_HOST: 'unix:///run/docker.sock', DOCKER_TLS_VERIFY: '1' }, expect: { transport: 'unix', path: '/run/docker.sock' } },
  { env: { DOCKER_HOST: 'tcp://127.0.0.1:2375' }, expect: { transport: 'tcp', host: '127.0.0.1', port: 2375 } },
  { env: { DOCKER_HOST: 'tcp://docker.internal:2375/' }, expect: { transport: 'tcp', host: 'docker.internal', port: 2375 } },
  { env: { DOCKER_HOST: 'tcp://[::1]:2375' }, expect: { transport: 'tcp', host: '::1', port: 2375 } },
  { env: { DOCKER_HOST: 'tcp://10.0.0.5' }, expect: { transport: 'tcp', host: '10.0.0.5', port: 2375 } },
  { env: { DOCKER_HOST: 'tcp://10.0.0.5', DOCKER_TLS_VERIFY: '1', HOME: '/home/op' }, expect: { transport: 'tcp', host: '10.0.0.5', port: 2376, tls: { certPath: '/home/op/.docker' } } },
  { env: { DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/etc/docker/client' }, expect: { transport: 'tcp', host: '10.0.0.5', port: 2376, tls: { certPath: '/etc/docker/client' } } },
  // As the docker CLI: any non-empty value turns verification on.
  { env: { DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS_VERIFY: '0', HOME: '/root' }, expect: { transport: 'tcp', host: '10.0.0.5', port: 2376, tls: { certPath: '/root/.docker' } } },
  { env: { DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS: '1' }, fail: /DOCKER_TLS without DOCKER_TLS_VERIFY .* set DOCKER_TLS_VERIFY=1/ },
  { env: { DOCKER_HOST: 'ssh://op@host' }, fail: /DOCKER_HOST="ssh:\/\/op@host" is not supported: use unix:\/\/\/PATH or tcp:\/\/HOST:PORT/ },
  { env: { DOCKER_HOST: 'fd://' }, fail: /is not supported/ },
  { env: { DOCKER_HOST: '/var/run/docker.sock' }, fail: /is not supported/ },
  { env: { DOCKER_HOST: 'tcp://' }, fail: /DOCKER_HOST="tcp:\/\/" is not an address/ },
  { env: { DOCKER_HOST: 'tcp://host:99999' }, fail: /is not an address/ },
  { env: { DOCKER_HOST: 'tcp://host:2375/v1.41' }, fail: /a path after it is not supported/ },
];

describe('dockerEndpoint', () => {
  it.each(table)('$env', ({ env, expect: endpoint, fail }) => {
    if (fail) expect(() => dockerEndpoint(env)).toThrow(fail);
    else expect(dockerEndpoint(env)).toEqual(endpoint);
  });
});
