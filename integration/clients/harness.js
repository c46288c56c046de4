// What integration/clients.sh hands the node clients: FAULTY_BOOTSTRAP (a broker behind
// faultproxy.py, which loses produce responses), FAULT_LOG (one line per lost response:
// "fault <client id> <correlation id>") and RESTART_BROKER (SIGKILLs and restarts the broker).
const fs = require('fs');
const { execFileSync } = require('child_process');

function need(variable) {
  const value = process.env[variable];
  if (!value) throw new Error(`${variable} is not set: run through integration/clients.sh`);
  return value;
}

/** The bootstrap address of the broker behind the fault proxy. */
function faulty() {
  return need('FAULTY_BOOTSTRAP');
}

/** Fails unless the proxy threw away at least one produce response of `clientId`. */
function expectFaults(clientId) {
  const lost = fs.readFileSync(need('FAULT_LOG'), 'utf8').split('\n')
    .filter((line) => line.split(' ')[1] === clientId).length;
  if (lost === 0) throw new Error(`the fault proxy lost no produce response of ${clientId}`);
}

/** SIGKILLs the broker and waits until it listens again. */
function restartBroker() {
  execFileSync(need('RESTART_BROKER'), { timeout: 60000, stdio: 'ignore' });
}

module.exports = { faulty, expectFaults, restartBroker };
