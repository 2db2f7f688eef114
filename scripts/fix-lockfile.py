"""npm 11 leaves rollup's platform packages out of the lock when the registry it can reach does not
serve them; `npm ci` then refuses the lock. Add the missing entries (never installed on this
platform: os/cpu do not match), derived from the package names."""
import json, sys
p=sys.argv[1]; lock=json.load(open(p))
pk=lock['packages']; ver=pk['node_modules/rollup']['version']
CPU={'arm-eabi':'arm','arm64':'arm64','x64':'x64','arm':'arm','loong64':'loong64','ppc64':'ppc64','riscv64':'riscv64','s390x':'s390x','ia32':'ia32'}
for name in pk['node_modules/rollup']['optionalDependencies']:
    key='node_modules/'+name
    if key in pk: continue
    parts=name.split('/')[1].split('-')[1:]  # e.g. ['linux','arm64','musl']
    os_=parts[0]; arch=parts[1]; rest=parts[2:]
    if arch=='arm' and rest and rest[0] in ('eabi','gnueabihf','musleabihf'): cpu='arm'
    else: cpu=CPU.get(arch,arch)
    e={'version':ver,'cpu':[cpu],'dev':True}
    libc=None
    if os_=='linux':
        libc='musl' if any('musl' in r for r in rest) else 'glibc'
        e['libc']=[libc]
    e['license']='MIT'; e['optional']=True; e['os']=[os_ if os_!='win32' else 'win32']
    pk[key]=e
lock['packages']=dict(sorted(pk.items(), key=lambda kv: (kv[0]!='', kv[0])))
json.dump(lock,open(p,'w'),indent=2); open(p,'a').write('\n')
